"""The several-hosts suite: one deployment (tests.hosts.deployment) per module,
on a network of namespaces that the module builds and removes. Skipped, with
the reason, where namespaces or the servers cannot be had."""

from __future__ import annotations

import os

import pytest

from tests.hosts.deployment import Deployment, missing_tools
from tests.hosts.network import Network, NetworkUnavailable

#: CI sets it: there the suite must run, not skip.
REQUIRED = os.environ.get("CALLPLANE_REQUIRE_HOSTS") == "1"


def _cannot(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (CALLPLANE_REQUIRE_HOSTS=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    missing = missing_tools()
    if missing:
        _cannot(missing)
    try:
        network = Network.open()
    except NetworkUnavailable as exc:
        _cannot(f"no network namespaces here: {exc}")
    try:
        directory = tmp_path_factory.mktemp("hosts")
        deployment = Deployment(network, directory).start()
        try:
            yield deployment
        finally:
            deployment.close()
    finally:
        network.close()
