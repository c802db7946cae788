"""The seed's ETL workflow: main -> extract -> transform -> load, each a distributed call.

Run it (with a control plane and a worker running; `callplane demo` starts both):

    python examples/example_workflow.py
"""

import os

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def main() -> dict[str, object]:
    print("Main: Starting data pipeline...")
    records = extract_data()
    print(f"Main: Extracted {len(records)} items")
    transformed = transform_data(records)
    print("Main: Transformed data")
    loaded = load_data(transformed)
    print(f"Main: Loaded {loaded} records")
    print("Workflow completed!")
    return {"status": "success", "records_processed": loaded, "pipeline": "ETL complete"}


@runner.stage
def extract_data() -> list[dict[str, int]]:
    print("Extract: Fetching data from source...")
    records = [{"id": i, "value": i * 10} for i in range(1, 6)]
    print(f"Extract: Found {len(records)} records")
    return records


@runner.stage
def transform_data(records: list[dict[str, int]]) -> list[dict[str, int]]:
    print(f"Transform: Processing {len(records)} records...")
    transformed = [{**record, "value": record["value"] * 2} for record in records]
    print(f"Transform: Transformed {len(transformed)} records")
    return transformed


@runner.stage
def load_data(records: list[dict[str, int]]) -> int:
    print(f"Load: Saving {len(records)} records...")
    print(f"Load: Successfully saved {len(records)} records")
    return len(records)


if __name__ == "__main__":
    print("Starting distributed workflow execution...")
    result = runner.run(main)
    print(f"Result: {result}")
