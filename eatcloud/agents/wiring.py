"""What every agent shares: its topics and tables, sending with headers, and the DLQ.

Failure policy, written once:
- a poison message (undecodable, unknown type, invalid, or one the domain code chokes on) is
  sent to ``<topic>-dlq`` with the error and its coordinates in headers, logged, and acked;
  the agent goes on with the next message;
- an infrastructure error (the broker refuses a send) propagates: the agent crashes, the
  worker restarts it, and the unacked message is processed again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.errors import KafkaError

from eatcloud.domain.saga import SagaPolicy
from eatcloud.errors import InfrastructureError, PoisonMessage
from eatcloud.observability import context
from eatcloud.observability.metrics import metrics
from eatcloud.payments.gateway import PaymentGateway
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder, encode
from eatcloud.tables import Tables

log = logging.getLogger("eatcloud.agents")

T = TypeVar("T")
Headers = list[tuple[str, bytes]]
# Trace context travels unchanged from a message to everything it causes.
CARRIED = ("traceparent", "tracestate", "x-request-id")


@dataclass
class Wiring:
    app: Any
    settings: Settings
    topics: dict[str, Any]
    tables: Tables
    gateway: PaymentGateway
    policy: SagaPolicy

    async def send(self, record: r.Record, cause: Any | None = None) -> None:
        """Send a record to its topic and key, carrying the cause's trace headers."""
        topic, key = t.route(record)
        headers: Headers = [("event_id", record.event_id.encode())]
        if cause is not None:
            headers += [(k, v) for k, v in _headers(cause) if k in CARRIED]
        await self.topics[topic].send(key=key.encode(), value=encode(record), headers=headers)

    async def send_all(self, records: Sequence[r.Record], cause: Any | None = None) -> None:
        for record in records:
            await self.send(record, cause)

    async def decode(self, event: Any, decoder: Decoder[T]) -> T | None:
        """The event's record, or None after sending the event to the DLQ."""
        try:
            return decoder(event.value)
        except PoisonMessage as exc:
            await self.dead_letter(event, exc)
            return None

    async def guarded(
        self, handle: Callable[[Any, Any], Awaitable[None]], event: Any, message: Any
    ) -> None:
        """Run a handler; a bug it hits on this message sends the message to the DLQ.

        The handler runs in the message's context: its request id, trace and order id are in
        every log line it writes (``observability``)."""
        carried = {k: v for k, v in header_text(event).items() if k in CARRIED}
        ids = (
            context.request_id.set(carried.get("x-request-id")),
            context.order_id.set(getattr(message, "order_id", None)),
        )
        trace = context.start_trace(carried)
        try:
            await handle(event, message)
        except PoisonMessage as exc:
            await self.dead_letter(event, exc)
        except (InfrastructureError, KafkaError):
            raise
        except Exception as exc:  # a bug meets this message: park it, keep the partition going
            log.exception("handler failed on %s", _coordinates(event))
            await self.dead_letter(event, PoisonMessage("handler_error", repr(exc)[:500]))
        finally:
            context.end_trace(trace)
            context.request_id.reset(ids[0])
            context.order_id.reset(ids[1])

    async def dead_letter(self, event: Any, error: PoisonMessage) -> None:
        message = event.message
        source = message.topic
        unprefixed = source[len(self.settings.kafka.topic_prefix) :]
        coordinates: Headers = [
            ("x-error-reason", error.reason.encode()),
            ("x-error-detail", error.detail.encode()),
            ("x-original-topic", source.encode()),
            ("x-original-partition", str(message.partition).encode()),
            ("x-original-offset", str(message.offset).encode()),
        ]
        headers = coordinates + [(k, v) for k, v in _headers(event) if not k.startswith("x-error")]
        await self.topics[t.dlq(unprefixed)].send(
            key=message.key, value=message.value, headers=headers
        )
        metrics().dead_letters.labels(t.dlq(unprefixed), error.reason).inc()
        log.warning("poison message %s sent to %s: %s", _coordinates(event), t.dlq(source), error)


def _coordinates(event: Any) -> str:
    message = event.message
    return f"{message.topic}[{message.partition}]@{message.offset}"


def guard_timer(name: str, tick: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer body that logs its failures instead of crashing the worker (Faust's default)."""

    async def guarded_tick() -> None:
        try:
            await tick()
        except (InfrastructureError, KafkaError):
            log.warning("timer %s: broker unavailable, retrying on the next tick", name)
        except Exception:
            log.exception("timer %s failed; it runs again on the next tick", name)

    guarded_tick.__name__ = name
    return guarded_tick


def header_text(event: Any) -> dict[str, str]:
    """The event's Kafka headers as text (trace context, event_id), for context and logs."""
    return {k: v.decode("latin-1") for k, v in _headers(event)}


def _headers(event: Any) -> Headers:
    raw = event.message.headers or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]
