"""Concurrent submits share requests; a submit alone is sent at once; one caller's
refused item is refused to that caller only."""

from __future__ import annotations

import threading

import pytest

from sdk.coalescing import Coalescer

pytestmark = pytest.mark.unit


class Refused(Exception):
    pass


class Server:
    """Answers items with their doubles; holds the first request until released."""

    def __init__(self, hold_first: bool = False):
        self.requests: list[list[int]] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def send(self, items: list[int]) -> list[int]:
        self.requests.append(list(items))
        self.first_arrived.set()
        self.release.wait(10)
        if any(item < 0 for item in items):
            raise Refused(f"negative among {items}")
        return [item * 2 for item in items]


def test_a_caller_alone_sends_its_items_at_once():
    server = Server()
    coalescer = Coalescer(server.send, limit=100, refused=Refused)
    assert [coalescer([i]) for i in range(3)] == [[0], [2], [4]]
    assert server.requests == [[0], [1], [2]]


def test_callers_that_come_while_a_request_is_out_share_the_next_one():
    server = Server(hold_first=True)
    coalescer = Coalescer(server.send, limit=100, refused=Refused)
    answers: dict[int, list[int]] = {}

    def submit(items: list[int]) -> None:
        answers[items[0]] = coalescer(items)

    first = threading.Thread(target=submit, args=([1],))
    first.start()
    assert server.first_arrived.wait(5)
    others = [threading.Thread(target=submit, args=([10 * i, 10 * i + 1],)) for i in range(1, 6)]
    for thread in others:
        thread.start()
    while sum(len(t.items) for t in coalescer._waiting) < 10:  # all five are waiting
        threading.Event().wait(0.01)
    server.release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert len(server.requests) == 2 and sorted(server.requests[1]) == sorted(
        item for i in range(1, 6) for item in (10 * i, 10 * i + 1))
    assert answers == {1: [2], **{10 * i: [20 * i, 20 * i + 2] for i in range(1, 6)}}


def test_a_refused_item_is_refused_to_its_own_caller_only():
    server = Server(hold_first=True)
    coalescer = Coalescer(server.send, limit=100, refused=Refused)
    outcomes: dict[int, object] = {}

    def submit(item: int) -> None:
        try:
            outcomes[item] = coalescer([item])
        except Refused as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=submit, args=(item,)) for item in (1, 2, -3, 4)]
    threads[0].start()
    assert server.first_arrived.wait(5)
    for thread in threads[1:]:
        thread.start()
    while len(coalescer._waiting) < 3:
        threading.Event().wait(0.01)
    server.release.set()
    for thread in threads:
        thread.join(5)
    assert outcomes[1] == [2] and outcomes[2] == [4] and outcomes[4] == [8]
    assert isinstance(outcomes[-3], Refused)
    assert coalescer([5]) == [10]  # and it goes on


def test_a_failed_request_fails_its_callers_and_the_next_one_is_sent():
    calls = []

    def flaky(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise ConnectionError("away")
        return items

    coalescer = Coalescer(flaky, limit=100, refused=Refused)
    with pytest.raises(ConnectionError):
        coalescer([1])
    assert coalescer([2]) == [2]
