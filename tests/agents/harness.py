"""A broker-less EatCloud app for agent tests: recorded sends, a fake gateway, one-message delivery.

Nothing here reaches Kafka:

- everything the saga's handlers write or send leaves through the runtime's ``Sink``
  (``eatcloud.runtime.adapter``), which is replaced by a recorder: batch envelopes are opened
  into one ``Sent`` per record, changelog records become ``Write``s;
- every declared topic's ``send`` is replaced by a recorder too (the Faust testing guide's
  advice: "if your agent sends a message to a topic, mock that topic");
- ``app.maybe_start_producer`` fails the test, so a send that bypasses both is caught at once
  instead of connecting to whatever broker runs on the machine;
- the consumer is never started: messages come from ``agent.put``, never from Kafka.

Messages go in through ``agent.test_context()`` / ``agent.put`` with JSON bytes, as Kafka would
deliver them, and ``Harness.deliver`` returns once the agent has finished with the message.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from eatcloud.agents import register
from eatcloud.agents.wiring import Wiring
from eatcloud.bootstrap import build as build_services
from eatcloud.bootstrap import make_faust_app
from eatcloud.domain.payment import Payment
from eatcloud.domain.points import Hold, PointsAccount
from eatcloud.domain.saga import SagaState
from eatcloud.domain.stock import Reservation, StoreStock
from eatcloud.payments.gateway import Authorization
from eatcloud.runtime import wire
from eatcloud.settings import KafkaSettings, Settings, WorkerSettings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder, encode
from eatcloud.tables import Tables, scoped
from tests import replies

# Port 1 refuses at once: a send that escapes the recorders can never reach the local broker.
NO_BROKER = "127.0.0.1:1"
PROCESS_TIMEOUT = 5.0

# What consumers of each output topic decode: an output that fails here is a bug of its sender.
OUTPUT_DECODERS: dict[str, Decoder[Any]] = {
    t.ORDER_COMMANDS: Decoder(r.OrderCommand),
    t.SAGA_REPLIES: Decoder(r.SagaReply),
    t.ORDER_EVENTS: Decoder(r.OrderEventRecord),
    t.STOCK_COMMANDS: Decoder(r.StockCommand),
    t.STOCK_EVENTS: Decoder(r.StockEventRecord),
    t.PAYMENT_COMMANDS: Decoder(r.PaymentCommand),
    t.POINTS_COMMANDS: Decoder(r.PointsCommand),
    t.POINTS_EVENTS: Decoder(r.PointsEventRecord),
}


@dataclass(frozen=True)
class Sent:
    """One message an agent sent to a topic (named without the deployment prefix)."""

    topic: str
    key: bytes
    value: bytes
    header_list: tuple[tuple[str, bytes], ...]

    @property
    def headers(self) -> dict[str, bytes]:
        return dict(self.header_list)

    @property
    def record(self) -> Any:
        return OUTPUT_DECODERS[self.topic](self.value)

    @property
    def type(self) -> str:
        return str(self.record.type)


@dataclass(frozen=True)
class Write:
    """One change a table sent to its changelog."""

    table: str
    key: Any
    value: Any


@dataclass
class Outbox:
    """Everything the agents sent, in order: topic messages and changelog writes."""

    sent: list[Sent] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    # Every command sent to a participant, as (its reply's id, its type), oldest first: a reply
    # a test delivers answers the newest of its kind (``tests.replies``).
    asked: list[tuple[str, str]] = field(default_factory=list)

    def note(self, sent: Sent) -> None:
        if sent.topic in (t.PAYMENT_COMMANDS, t.POINTS_COMMANDS, t.STOCK_COMMANDS):
            self.asked.append((r.reply_id(sent.record), sent.type))

    def take(self) -> list[Sent]:
        """The messages sent since the last ``take``."""
        taken, self.sent = self.sent, []
        return taken

    def clear(self) -> None:
        self.sent.clear()
        self.writes.clear()

    def install(self, app: Any, topics: dict[str, Any], runtime: Any, prefix: str) -> None:
        for name, topic in topics.items():
            topic.send = self._sender(name)
        changelogs = {table.changelog_topic.get_topic_name(): n for n, table in app.tables.items()}
        runtime.sink = _RecordingSink(self, changelogs, prefix)
        runtime.stop = _crash_the_agent  # not the test process
        app.maybe_start_producer = _no_broker

    def _sender(self, name: str) -> Any:
        async def send(
            *, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None, **_: Any
        ) -> asyncio.Future[None]:
            self.sent.append(Sent(name, key, value, tuple(headers or ())))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        return send


class _RecordingSink:
    """The runtime's sink, recording instead of producing (see the module docstring)."""

    def __init__(self, outbox: Outbox, changelogs: dict[str, str], prefix: str) -> None:
        self.outbox, self.changelogs, self.prefix = outbox, changelogs, prefix

    async def produce(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> asyncio.Future[None]:  # fmt: skip
        if topic in self.changelogs:
            key_text = orjson.loads(key or b"null")
            self.outbox.writes.append(Write(self.changelogs[topic], key_text, value))
        else:
            name = topic[len(self.prefix) :]
            if wire.is_batch(value):
                for item in wire.unpack(value or b""):
                    record = OUTPUT_DECODERS[name](item.value)
                    item_headers = [("event_id", record.event_id.encode())]
                    item_headers += [(k, v.encode()) for k, v in item.headers.items()]
                    routed = t.route(record)[1].encode()
                    self.outbox.sent.append(Sent(name, routed, item.value, tuple(item_headers)))
                    self.outbox.note(self.outbox.sent[-1])
            else:
                self.outbox.sent.append(Sent(name, key or b"", value or b"", tuple(headers or ())))
                self.outbox.note(self.outbox.sent[-1])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def _no_broker() -> None:
    raise AssertionError("an agent test tried to start the Kafka producer")


class FakeGateway:
    """A ``PaymentGateway`` that answers at once, declines on request and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.declined: dict[str, str] = {}  # order_id -> reason
        self.failure: BaseException | None = None

    async def authorize(self, order_id: str, customer_id: str, amount: int) -> Authorization:
        self._call("authorize", order_id)
        if order_id in self.declined:
            return Authorization(False, reason=self.declined[order_id])
        return Authorization(True, authorization_id=f"auth-{order_id}")

    async def void(self, order_id: str) -> None:
        self._call("void", order_id)

    async def refund(self, order_id: str) -> None:
        self._call("refund", order_id)

    def _call(self, op: str, order_id: str) -> None:
        self.calls.append((op, order_id))
        if self.failure is not None:
            raise self.failure


@dataclass
class Harness:
    app: Any
    settings: Settings
    wiring: Wiring
    outbox: Outbox

    @classmethod
    def build(cls, data_dir: Path, gateway: Any) -> Harness:
        """A fresh app with its own id and topic prefix, so no two tests share a name."""
        app_id = f"agents-{uuid.uuid4().hex[:12]}"
        settings = Settings(
            env="test",
            kafka=KafkaSettings(bootstrap_servers=NO_BROKER, topic_prefix=f"{app_id}."),
            worker=WorkerSettings(app_id=app_id, store="memory://", data_dir=data_dir),
        )
        app = make_faust_app(settings, id=app_id, store="memory://", datadir=str(data_dir))
        wiring = register(app, build_services(settings, gateway=gateway))
        outbox = Outbox()
        outbox.install(app, wiring.topics, wiring.runtime, settings.kafka.topic_prefix)
        return cls(app, settings, wiring, outbox)

    def close(self) -> None:
        """Close the event loop of the consumer's thread: a stream builds the consumer on first
        use, and its thread makes a loop of its own that only a started thread would close."""
        thread = getattr(self.app._consumer, "_thread", None)
        if thread is not None and not thread.thread_loop.is_closed():
            thread.thread_loop.close()

    @property
    def tables(self) -> Tables:
        return self.wiring.tables

    # Reads of the tables' current values, in one place since their layout may change.

    def saga(self, order_id: str) -> SagaState | None:
        return self.tables.sagas.get(order_id)

    def payment(self, order_id: str) -> Payment | None:
        return self.tables.payments.get(order_id)

    def ledger(self, store_id: str) -> StoreStock:
        entry = self.tables.stock.entries.get(store_id)
        return entry.ledger if entry is not None else StoreStock()

    def reservation(self, store_id: str, order_id: str) -> Reservation | None:
        return self.tables.stock.records.get(scoped(store_id, order_id))

    def account(self, customer_id: str) -> PointsAccount:
        entry = self.tables.points.entries.get(customer_id)
        return entry.account if entry is not None else PointsAccount()

    def hold(self, customer_id: str, order_id: str) -> Hold | None:
        return self.tables.points.records.get(scoped(customer_id, order_id))

    def agent(self, name: str) -> Any:
        return self.app.agents[name]

    def topic_name(self, topic: str) -> str:
        return f"{self.settings.kafka.topic_prefix}{topic}"

    async def deliver(
        self,
        agent: Any,
        message: r.Record | bytes | None,
        *,
        topic: str | None = None,
        key: str | None = None,
        partition: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Put one message on ``agent`` (a test context) and wait until it is processed.

        A record goes to the topic and key ``streams.topics.route`` gives it; raw bytes (or
        None) need ``topic`` and ``key``.
        """
        if isinstance(message, BaseModel):
            message = replies.answering(message, self.outbox.asked)
            routed_topic, routed_key = t.route(message)
            topic, key = topic or routed_topic, key if key is not None else routed_key
            value: bytes | None = encode(message)
        else:
            value = message
        assert topic is not None and key is not None, "raw bytes need a topic and a key"
        # The source topic is what a real consumer reports in message.topic (the DLQ copies
        # it); test_context takes it from the agent's own channel, and the orchestrator's
        # channel has two topics, so each delivery names its topic.
        agent.original_channel = self.wiring.topics[topic]
        event = await agent.put(
            value=value, key=key.encode(), partition=partition, headers=headers or []
        )
        await _processed(agent, event)
        return event


def _crash_the_agent(agent: str, exc: BaseException) -> None:
    """A failed unit ends the worker process in production; here it crashes the agent, which
    ``Harness.deliver`` reports."""
    raise exc


async def _processed(agent: Any, event: Any) -> None:
    """Wait until the agent asked for its next message (the stream then acks this one).

    ``put`` returns once the message entered the stream, before a handler that awaits
    something slow has finished with it; the ack is the agent's own "done".
    """
    async with asyncio.timeout(PROCESS_TIMEOUT):
        while not event.message.acked:
            if agent._crash_reason is not None:
                raise agent._crash_reason
            await asyncio.sleep(0)
