"""The points ledger of one customer: holds per order, deductions, returns, earnings. Pure.

``balance`` counts every point the customer owns, held ones included; ``held`` is the sum of
open holds. Invariants: ``0 <= held <= balance``. Each order has one hold record, which is the
idempotency key for every points command of that order: releasing points of an order touches
only that order's hold (the original released all of a customer's holds), and an order earns
points once (``earned`` on its record; an order that held no points gets a record that says
it spent none).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from eatcloud.streams import records as r


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PointsAccount(_Value):
    balance: int = 0
    held: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.held


class HoldStatus(StrEnum):
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    DEDUCTED = "DEDUCTED"
    RELEASED = "RELEASED"
    RETURNED = "RETURNED"


class Hold(_Value):
    status: HoldStatus
    amount: int = 0
    reason: str = ""
    earned: int = 0  # points the order earned when it completed


@dataclass(frozen=True)
class Outcome:
    account: PointsAccount
    hold: Hold | None  # None: the hold record is unchanged


def reserve(account: PointsAccount, hold: Hold | None, amount: int) -> Outcome:
    if hold is not None:
        return Outcome(account, None)
    if amount > account.available:
        return Outcome(account, Hold(status=HoldStatus.REJECTED, reason="insufficient_points"))
    return Outcome(
        account.model_copy(update={"held": account.held + amount}),
        Hold(status=HoldStatus.RESERVED, amount=amount),
    )


def deduct(account: PointsAccount, hold: Hold | None) -> Outcome:
    """Spend a held amount; only a RESERVED hold can be deducted."""
    if hold is None or hold.status is not HoldStatus.RESERVED:
        return Outcome(account, None)
    spent = account.model_copy(
        update={"held": account.held - hold.amount, "balance": account.balance - hold.amount}
    )
    return Outcome(spent, hold.model_copy(update={"status": HoldStatus.DEDUCTED}))


def release(account: PointsAccount, hold: Hold | None) -> Outcome:
    """Undo an order's points: drop a hold, or give deducted points back; else a tombstone."""
    if hold is None:
        return Outcome(account, Hold(status=HoldStatus.RELEASED, reason="nothing_held"))
    if hold.status is HoldStatus.RESERVED:
        freed = account.model_copy(update={"held": account.held - hold.amount})
        return Outcome(freed, hold.model_copy(update={"status": HoldStatus.RELEASED}))
    if hold.status is HoldStatus.DEDUCTED:
        returned = account.model_copy(update={"balance": account.balance + hold.amount})
        return Outcome(returned, hold.model_copy(update={"status": HoldStatus.RETURNED}))
    return Outcome(account, None)


def earn(account: PointsAccount, hold: Hold | None, amount: int) -> Outcome:
    """Credit what a completed order earned, once per order."""
    if hold is not None and hold.earned:
        return Outcome(account, None)
    record = hold if hold is not None else Hold(status=HoldStatus.DEDUCTED)  # spent none
    earned = account.model_copy(update={"balance": account.balance + amount})
    return Outcome(earned, record.model_copy(update={"earned": amount}))


def adjust(account: PointsAccount, delta: int) -> PointsAccount | None:
    """Grant or remove points; None when it would leave less than what is held."""
    if account.balance + delta < account.held:
        return None
    return account.model_copy(update={"balance": account.balance + delta})


OrderPointsCommand = r.ReservePoints | r.DeductPoints | r.ReleasePoints


def apply(account: PointsAccount, hold: Hold | None, command: OrderPointsCommand) -> Outcome:
    """The ledger function an order's points command calls for."""
    if isinstance(command, r.ReservePoints):
        return reserve(account, hold, command.amount)
    if isinstance(command, r.DeductPoints):
        return deduct(account, hold)
    return release(account, hold)


def change(
    command: OrderPointsCommand | r.EarnPoints, before: PointsAccount, outcome: Outcome
) -> r.PointsChange | None:
    """What an order's points command changed, for ``points-events``; None when nothing."""
    after = outcome.account
    if outcome.hold is None or (after.balance, after.held) == (before.balance, before.held):
        return None
    if isinstance(command, r.EarnPoints):
        return r.PointsChange.EARNED
    return r.PointsChange(outcome.hold.status.value)  # RESERVED, DEDUCTED, RELEASED, RETURNED


def reply_for(command: OrderPointsCommand, hold: Hold | None) -> r.Reply:
    """The saga's answer to a command, from the order's hold after it."""
    ids = r.reply_ids(command)
    if isinstance(command, r.ReservePoints):
        if hold is None or hold.status is HoldStatus.REJECTED:
            return r.PointsRejected(**ids, reason=hold.reason if hold else "insufficient_points")
        if hold.status is HoldStatus.RELEASED and hold.amount == 0:  # a tombstone
            return r.PointsRejected(**ids, reason="cancelled_before_reserved")
        return r.PointsReserved(**ids)
    if isinstance(command, r.DeductPoints):
        return r.PointsDeducted(**ids)
    return r.PointsReleased(**ids)
