"""JSON encoding of records and their strict decoding: what cannot be decoded is poison."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from eatcloud.errors import PoisonMessage

R = TypeVar("R")


def encode(record: BaseModel) -> bytes:
    return record.__pydantic_serializer__.to_json(record)


class Decoder(Generic[R]):
    """Decodes one topic's records (a discriminated union) from JSON bytes."""

    def __init__(self, union: Any) -> None:
        self._adapter: TypeAdapter[R] = TypeAdapter(union)

    def __call__(self, raw: bytes | None) -> R:
        if not raw:
            raise PoisonMessage("empty", "the message has no value")
        try:
            return self._adapter.validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            reason = {
                "json_invalid": "undecodable",
                "union_tag_invalid": "unknown_type",
                "union_tag_not_found": "unknown_type",
            }.get(first["type"], "invalid")
            raise PoisonMessage(reason, _summary(exc)) from exc


def _summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)[:500]
