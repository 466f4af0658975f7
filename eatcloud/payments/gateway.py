"""The ``PaymentGateway`` port and the simulated gateway that stands in for a real PSP.

The simulated gateway behaves like a real one where it matters to the saga: it takes time
(configurable latency), declines by rule (so tests and demos choose outcomes), and is
idempotent per order on its own side, across worker restarts, when it keeps a journal: a
repeated authorization for an order returns the first answer instead of charging twice.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from eatcloud.settings import PaymentSettings


@dataclass(frozen=True)
class Authorization:
    approved: bool
    authorization_id: str | None = None
    reason: str = ""


class PaymentGateway(Protocol):
    async def authorize(self, order_id: str, customer_id: str, amount: int) -> Authorization: ...

    async def void(self, order_id: str) -> None: ...

    async def refund(self, order_id: str) -> None: ...


class SimulatedGateway:
    """Approves unless the amount ends in ``decline_cents`` or is over ``limit``."""

    def __init__(self, settings: PaymentSettings) -> None:
        self._latency = settings.latency_ms / 1000
        self._decline_cents = settings.decline_cents
        self._limit = settings.limit
        self._journal = settings.journal
        self._read_upto = 0
        self._answers: dict[str, Authorization] = {}

    async def authorize(self, order_id: str, customer_id: str, amount: int) -> Authorization:
        await self._wait()
        known = self._answers.get(order_id) or self._from_journal(order_id)
        if known is not None:
            self._record("authorize", order_id, amount=amount, repeat=True)
            return known
        if amount % 100 == self._decline_cents:
            answer = Authorization(False, reason="card_declined")
        elif amount > self._limit:
            answer = Authorization(False, reason="over_limit")
        else:
            answer = Authorization(True, authorization_id=f"auth_{uuid.uuid4().hex[:16]}")
        self._answers[order_id] = answer
        self._record(
            "authorize",
            order_id,
            amount=amount,
            approved=answer.approved,
            authorization_id=answer.authorization_id,
            reason=answer.reason,
            repeat=False,
        )
        return answer

    async def void(self, order_id: str) -> None:
        await self._wait()
        self._record("void", order_id)

    async def refund(self, order_id: str) -> None:
        await self._wait()
        self._record("refund", order_id)

    async def _wait(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)

    def _record(self, op: str, order_id: str, **fields: object) -> None:
        if self._journal is None:
            return
        # The process (a worker's run) that called: audits count what each run asked for.
        call = {"op": op, "order_id": order_id, "pid": os.getpid(), **fields}
        line = orjson.dumps(call) + b"\n"
        with self._journal.open("ab") as out:
            out.write(line)

    def _from_journal(self, order_id: str) -> Authorization | None:
        """Catch up on answers given before a restart (or by another worker process)."""
        if self._journal is None or not self._journal.exists():
            return None
        with self._journal.open("rb") as journal:
            journal.seek(self._read_upto)
            chunk = journal.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._read_upto += len(complete)
        for line in complete.splitlines():
            entry = orjson.loads(line)
            if entry["op"] == "authorize" and not entry["repeat"]:
                self._answers[entry["order_id"]] = Authorization(
                    entry["approved"], entry["authorization_id"], entry["reason"]
                )
        return self._answers.get(order_id)


def journal_entries(path: Path) -> list[dict[str, object]]:
    """Every call recorded in a journal, for audits and tests."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def make_gateway(settings: PaymentSettings) -> PaymentGateway:
    return SimulatedGateway(settings)
