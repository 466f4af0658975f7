"""A small Faust app for the stack tests: a changelog-backed table of running totals.

Built with ``eatcloud.bootstrap.make_faust_app``, so it runs with exactly the broker, store and
timeout policy of the real worker. Everything it names comes from the environment, so every
test gets its own app id, topics and data folder:

- ``TOTALS_PREFIX``: prefix of the app id and of its topics and table.
- ``EATCLOUD_*``: the usual settings (data dir, processing guarantee, web port, ...).

Each message on ``<prefix>-ops`` (JSON, keyed by the total's name) is one of
``{"op": "set", "value": v, "seq": n}``, ``{"op": "add", "value": v, "seq": n}`` or
``{"op": "get", "seq": n}``; the agent answers each on ``<prefix>-results`` with the total
after the operation.
"""

from __future__ import annotations

import os
from typing import Any

from eatcloud.bootstrap import make_faust_app
from eatcloud.settings import Settings

PREFIX = os.environ["TOTALS_PREFIX"]

app = make_faust_app(Settings(), id=PREFIX)
ops = app.topic(f"{PREFIX}-ops", key_type=str, value_serializer="json")
results = app.topic(f"{PREFIX}-results", key_type=str, value_serializer="json")
totals = app.Table("totals", default=int)


@app.agent(ops)
async def apply(stream: Any) -> None:
    async for key, message in stream.items():
        if message["op"] == "set":
            totals[key] = message["value"]
        elif message["op"] == "add":
            totals[key] += message["value"]
        await results.send(key=key, value={"key": key, "seq": message["seq"], "total": totals[key]})
