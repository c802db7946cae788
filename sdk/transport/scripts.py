"""callplane's Lua scripts (sdk/transport/lua/*.lua), each registered once per client.

Lua has no include: a script built on shared functions (claiming, finishing) is
the function files followed by its own file.
"""

from __future__ import annotations

import functools
from importlib import resources

import redis
from redis.commands.core import Script

LUA = resources.files("sdk.transport") / "lua"


@functools.cache
def source(name: str, *functions: str) -> str:
    """The text of script `name`, after the function files it uses."""
    return "\n".join((LUA / f"{part}.lua").read_text() for part in (*functions, name))


class Scripts:
    """Every script, registered with one client (redis-py sends each by its hash)."""

    def __init__(self, client: redis.Redis):
        def register(name: str, *functions: str) -> Script:
            return client.register_script(source(name, *functions))

        self.enqueue = register("enqueue", "push_function")
        self.promote = register("promote", "push_function")
        self.admit = register("admit", "push_function")
        self.restore_slots = register("restore_slots")
        self.drop_stubs = register("drop_stubs")
        self.hold_duty = register("hold_duty")
        self.claim = register("claim", "claim_functions")
        self.claim_next = register("claim_next", "claim_functions")
        self.finish = register("finish", "finish_function")
        self.finish_and_claim_next = register(
            "finish_and_claim_next", "finish_function", "claim_functions"
        )
        self.take_any = register("take_any", "push_function")
        self.unlist = register("unlist", "push_function")
        self.retry = register("retry")
        self.abandon = register("abandon")
        self.untracked = register("untracked")
        self.announce = register("announce")
        self.set_aside = register("set_aside")
