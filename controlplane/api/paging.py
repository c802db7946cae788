"""Pages of calls that may not know their total (controlplane.store.reads
COUNT_LIMIT): the X-Pagination header as flask-smorest writes it when the total
was counted, and without `total`, `total_pages` and `last_page` when it was not,
`next_page` then saying that more follow."""

from __future__ import annotations

from typing import Any

import msgspec

from controlplane.api.blueprint import ApiBlueprint


class PageCount(msgspec.Struct, frozen=True):
    """How many calls a list matches: `total`, or None for more than were counted
    (more than its page's end, so a next page exists)."""

    total: int | None


class PagedBlueprint(ApiBlueprint):
    """An ApiBlueprint whose views set their pagination's item_count to a PageCount."""

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: Any) -> dict:
        if item_count.total is not None:
            return ApiBlueprint._make_pagination_metadata(page, page_size, item_count.total)
        header = {"page": page, "first_page": 1, "next_page": page + 1}
        if page > 1:
            header["previous_page"] = page - 1
        return header
