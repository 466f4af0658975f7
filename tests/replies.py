"""Replies written by tests, made to answer a command the saga really sent.

The saga takes a reply only if its id is the reply id of a command it sent
(``records.reply_id``). Tests write replies by type; ``answering`` gives such a reply, when
it has no id of its own, the id of the newest command of the kind it answers.
"""

from __future__ import annotations

from collections.abc import Iterable

from eatcloud.streams import records as r

# Which command each reply answers, by type.
ANSWERS: dict[str, str] = {
    "PointsReserved": "ReservePoints", "PointsRejected": "ReservePoints",
    "PointsDeducted": "DeductPoints", "PointsReleased": "ReleasePoints",
    "StockReserved": "ReserveStock", "StockRejected": "ReserveStock",
    "StockCommitted": "CommitStock", "StockCommitRejected": "CommitStock",
    "StockReleased": "ReleaseStock",
    "PaymentAuthorized": "AuthorizePayment", "PaymentDeclined": "AuthorizePayment",
    "PaymentVoided": "VoidPayment", "PaymentRefunded": "RefundPayment",
}  # fmt: skip


def answering(message: r.Record, sent: Iterable[tuple[str, str]]) -> r.Record:
    """``message`` with the id of the newest of ``sent`` ((reply id, command type), oldest
    first) that it answers; a message that is no reply, or has an id, as it is."""
    if not isinstance(message, r.Reply) or "event_id" in message.model_fields_set:
        return message
    wanted = ANSWERS[message.type]  # type: ignore[attr-defined]  # every reply has its type
    for reply_id, kind in reversed(list(sent)):
        if kind == wanted:
            return message.model_copy(update={"event_id": reply_id})
    return message
