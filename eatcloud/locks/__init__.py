"""Redis Lua scripts, shipped as package files and registered once per client.

Each script runs atomically in Redis: the refresh-token rotation, the checkout lock, the
double-submit guard, the hot-path stock gate and the rate limiter need a read and a write that
nothing can come between.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any


@cache
def source(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text()


def script(client: Any, name: str) -> Any:
    """``name``.lua registered on ``client`` (redis-py runs it by EVALSHA, loading on a miss)."""
    cache: dict[str, Any] = client.__dict__.setdefault("_eatcloud_scripts", {})
    if name not in cache:
        cache[name] = client.register_script(source(name))
    return cache[name]
