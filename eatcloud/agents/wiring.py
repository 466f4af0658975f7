"""What every agent of a worker shares: its settings, topics, tables, runtime and gateway.

The saga's handlers get only what they need (see each module's dataclass); the projections and
the Kinesis forwarder, which are plain Faust agents over the public topics, read their topics
and settings from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eatcloud.domain.saga import SagaPolicy
from eatcloud.payments.gateway import PaymentGateway
from eatcloud.runtime.adapter import CARRIED, Runtime, guard_timer
from eatcloud.runtime.adapter import header_text as runtime_header_text
from eatcloud.settings import Settings
from eatcloud.tables import Tables

__all__ = ["CARRIED", "Wiring", "guard_timer", "header_text"]


@dataclass
class Wiring:
    app: Any
    settings: Settings
    topics: dict[str, Any]
    tables: Tables
    gateway: PaymentGateway
    policy: SagaPolicy
    runtime: Runtime


def header_text(event: Any) -> dict[str, str]:
    """The event's Kafka headers as text (trace context, event_id), for context and logs."""
    return runtime_header_text(event.message.headers)
