"""What every agent of a worker shares: its services (settings, clients, gateway, metrics,
clock), topics, tables and runtime.

The saga's handlers get only what they need (see each module's dataclass); the projections and
the Kinesis forwarder, which are plain Faust agents over the public topics, read their topics
and clients from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eatcloud.domain.saga import SagaPolicy
from eatcloud.resources import Services
from eatcloud.runtime.adapter import CARRIED, Runtime, guard_timer
from eatcloud.runtime.adapter import header_text as runtime_header_text
from eatcloud.settings import Settings
from eatcloud.tables import Tables

__all__ = ["CARRIED", "Wiring", "guard_timer", "header_text"]


@dataclass
class Wiring:
    app: Any
    services: Services
    topics: dict[str, Any]
    tables: Tables
    policy: SagaPolicy
    runtime: Runtime

    @property
    def settings(self) -> Settings:
        return self.services.settings


def header_text(event: Any) -> dict[str, str]:
    """The event's Kafka headers as text (trace context, event_id), for context and logs."""
    return runtime_header_text(event.message.headers)
