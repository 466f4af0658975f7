"""The EatCloud Faust app: ``faust -A eatcloud.app worker`` or ``eatcloud worker``."""

from __future__ import annotations

from eatcloud.agents import register
from eatcloud.bootstrap import make_faust_app
from eatcloud.settings import get_settings

settings = get_settings()
app = make_faust_app(settings)
wiring = register(app, settings)
