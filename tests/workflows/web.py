"""A small report workflow for the web view's tests: one call fails until a flag
file exists (a downstream outage that someone then fixes), so a retry succeeds."""

import os
import time
from pathlib import Path

from sdk.decorators import WorkflowRunner
from sdk.errors import StageFailed

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def report(flag_file):
    numbers = extract()
    squares = square.map(numbers)
    return publish(flag_file, sum(squares))


@runner.stage
def extract():
    return [1, 2, 3, 4]


runner.schedule(extract, every=3600, name="hourly-extract")  # shown on the runs page


@runner.stage(concurrency=1, key="tenant")
def per_tenant(tenant, seconds):
    """A limited stage (the runs page lists its limit and its calls per tenant)."""
    time.sleep(seconds)
    return tenant


@runner.stage
def square(x):
    return x * x


@runner.stage
def publish(flag_file, total):
    if not Path(flag_file).exists():
        raise ConnectionError("the report store refused the upload")
    return {"published": total}


class CardDeclined(Exception):
    """A customer's card refused one charge."""


@runner.stage
def settle(customers, charges, declined):
    """A 10,000-call run for the run page: one call per customer, each charging its
    card `charges` times in place; `declined` lists [customer, charge] pairs that fail.
    The run fails after settling everyone else, naming who could not be settled."""
    unsettled = []
    for customer in range(customers):
        refused = [charge for who, charge in declined if who == customer]
        try:
            settle_customer(customer, charges, refused)
        except StageFailed:  # its failure is recorded on its call; settle the others
            unsettled.append(customer)
    if unsettled:
        raise RuntimeError(f"customers {unsettled} could not be settled")
    return customers


@runner.stage
def settle_customer(customer, charges, refused):
    return sum(charge_card(customer, charge, charge in refused) for charge in range(charges))


@runner.stage
def charge_card(customer, charge, declined):
    if declined:
        raise CardDeclined(f"card of customer {customer} declined charge {charge}")
    return 100 + charge


@runner.stage
def awaits_approval(key):
    """Waits for a person's decision, sent as an event to `key`."""
    return runner.wait_for_event(key)


@runner.stage
def naps(seconds):
    """Sleeps durably (the runs and run pages say until when), then says how long."""
    runner.sleep(seconds)
    return seconds
