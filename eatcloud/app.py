"""The EatCloud Faust app: ``faust -A eatcloud.app worker`` or ``eatcloud worker``."""

from __future__ import annotations

import gc

from eatcloud.agents import register
from eatcloud.bootstrap import build, make_faust_app
from eatcloud.settings import get_settings

# The projections' 4 connections and the outbox relay's 2 (its LISTEN connection and a round's).
POOL_SIZE = 6

settings = get_settings()
services = build(settings, pool_size=POOL_SIZE)
app = make_faust_app(settings)
wiring = register(app, services)

# Everything made so far (modules, classes, pydantic's validators, the app) lives as long as
# the process: out of the cyclic collector's sight, so its full collections, which stop the
# event loop, walk only what the worker makes while it runs (docs/benchmarks.md).
gc.freeze()
