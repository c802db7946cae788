"""A deeper tree: a report over regions, each region over its stores, each store
scored by a stage of its own. Three levels of nested calls, every one recorded.

    python examples/distributed_workflow.py
"""

import os

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))

REGIONS = {"north": ["n1", "n2"], "south": ["s1", "s2", "s3"]}


@runner.stage
def report(regions: dict[str, list[str]]) -> dict[str, object]:
    totals = {name: region_total(name, stores) for name, stores in regions.items()}
    print(f"Report: {len(totals)} regions")
    return {"totals": totals, "grand_total": sum(totals.values())}


@runner.stage
def region_total(name: str, stores: list[str]) -> int:
    total = sum(store_sales(store) for store in stores)
    print(f"Region {name}: {total}")
    return total


@runner.stage
def store_sales(store: str) -> int:
    return sum(score(store, day) for day in range(3))


@runner.stage
def score(store: str, day: int) -> int:
    return len(store) * 10 + day


if __name__ == "__main__":
    print(f"Result: {runner.run(report, REGIONS)}")
