"""The EatCloud Faust app: ``faust -A eatcloud.app worker`` or ``eatcloud worker``."""

from __future__ import annotations

from eatcloud.bootstrap import make_faust_app
from eatcloud.settings import get_settings

app = make_faust_app(get_settings())
