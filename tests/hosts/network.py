"""A little network of Linux network namespaces, so that one machine can stand
in for several hosts: a switch (a bridge, in a namespace of its own) and hosts
with one link each to it, addressed from 198.18.0.0/15 (set aside for benchmark
networks). No namespace has a route beyond that network, and the machine's own
namespace is never part of it: processes on the hosts reach each other only.

Needs root (CAP_NET_ADMIN); `Network.open` says why it cannot be built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

#: The network's /24, one per process (so two test runs never share one).
SUBNET = "198.18.{}.{}"
PREFIX_LENGTH = 24


class NetworkUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, no `ip`, a container without the right)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Host:
    """One namespace with one link (eth0) to the switch."""

    def __init__(self, network: Network, name: str, address: str, link: str):
        self.network, self.name, self.address = network, name, address
        self.namespace = f"{network.tag}-{name}"
        self._link = link  # the switch's end of this host's cable

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run on this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def popen(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Start `argv` on this host, its output in `log`, as the leader of a
        process group of its own (see Deployment.close)."""
        with open(log, "ab") as output:
            return subprocess.Popen(self.command(argv), stdout=output, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})}, cwd=cwd,
                                    start_new_session=True)

    def answers(self, url: str, timeout: float = 2.0) -> bool:
        """Whether an HTTP GET of `url` from this host answers 200."""
        done = subprocess.run(self.command(["curl", "-sf", "-o", "/dev/null", "--max-time",
                                            str(timeout), url]), check=False)
        return done.returncode == 0

    def cut(self) -> None:
        """Unplug this host's cable: its packets go nowhere, nothing tells its peers."""
        _ip("-n", self.network.switch, "link", "set", self._link, "down")

    def plug(self) -> None:
        _ip("-n", self.network.switch, "link", "set", self._link, "up")


class Network:
    def __init__(self) -> None:
        number = os.getpid() % 250 + 1
        self.tag = f"cpnet{number}"
        self.switch = f"{self.tag}-switch"
        self._subnet = number
        #: The network's addresses, as a CIDR.
        self.cidr = f"{SUBNET.format(number, 0)}/{PREFIX_LENGTH}"
        self.hosts: list[Host] = []

    @classmethod
    def open(cls) -> Network:
        """A new network with its switch; NetworkUnavailable says why not."""
        if os.geteuid() != 0:
            raise NetworkUnavailable("network namespaces need root")
        if shutil.which("ip") is None or shutil.which("curl") is None:
            raise NetworkUnavailable("the ip and curl commands are needed")
        network = cls()
        network.close()  # what an earlier run of this pid left, if anything
        try:
            _ip("netns", "add", network.switch)
            _ip("-n", network.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", network.switch, "link", "set", "br0", "up")
        except NetworkUnavailable:
            network.close()
            raise
        return network

    def host(self, name: str) -> Host:
        """A new host on the switch, with the next address."""
        index = len(self.hosts) + 2
        address = SUBNET.format(self._subnet, index)
        host = Host(self, name, address, f"port{index}")
        _ip("netns", "add", host.namespace)
        _ip("link", "add", "eth0", "netns", host.namespace, "type", "veth",
            "peer", "name", f"port{index}", "netns", self.switch)
        _ip("-n", self.switch, "link", "set", f"port{index}", "master", "br0", "up")
        _ip("-n", host.namespace, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        self.hosts.append(host)
        return host

    def close(self) -> None:
        """Remove every namespace of this network (their links go with them)."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=False).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.split() else ""
            if name == self.switch or name.startswith(f"{self.tag}-"):
                subprocess.run(["ip", "netns", "del", name], check=False)
        self.hosts.clear()
