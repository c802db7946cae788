"""The run endpoints: runs (root calls) and the call tree under any call."""

from __future__ import annotations

from flask.views import MethodView

from controlplane.api.answers import tree_answer
from controlplane.api.blueprint import CALL_ID, URI_TOO_LONG, services
from controlplane.api.paging import PageCount, PagedBlueprint
from controlplane.schemas import CallSchema, RunListQuerySchema, TreeSchema, WaitNodeSchema
from sdk.records import plain

blp = PagedBlueprint("runs", __name__, description="Runs and call trees")


@blp.route("/call/<call_id>/tree", parameters=[CALL_ID])
class CallTree(MethodView):
    @blp.response(200, TreeSchema)
    @blp.refuses(404, URI_TOO_LONG)
    def get(self, call_id):
        """The call and every call under it, depth-first (one query for the whole run)."""
        return tree_answer(call_id, services().reading.tree(call_id))


@blp.route("/call/<call_id>/waits", parameters=[CALL_ID])
class CallWaits(MethodView):
    @blp.response(200, WaitNodeSchema)
    @blp.refuses(404, URI_TOO_LONG)
    def get(self, call_id):
        """Why the call has not finished: the chain from it down to what holds it up
        (its place in its queue, its time, its worker, the calls it waits on, by
        stage and status, each told through its first)."""
        return plain(services().why.explain(call_id))


@blp.route("/runs")
class RunList(MethodView):
    @blp.arguments(RunListQuerySchema(), location="query")
    @blp.response(200, CallSchema(many=True))
    @blp.paginate()
    @blp.refuses(URI_TOO_LONG)
    def get(self, query, pagination_parameters):
        """Runs (root calls), newest first, filtered by status, stage, time and code
        version.

        The X-Pagination header has `total`, `total_pages` and `last_page` when at
        most 1,000 runs match past this page; with more it has only `page`,
        `first_page`, `previous_page` and `next_page`: matching runs are never all
        counted on a request."""
        runs, total = services().reading.runs(
            query, pagination_parameters.first_item, pagination_parameters.page_size
        )
        pagination_parameters.item_count = PageCount(total)
        return runs
