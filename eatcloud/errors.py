"""One exception root for EatCloud, with a domain branch and an infrastructure branch."""

from __future__ import annotations


class EatCloudError(Exception):
    """Root of every error EatCloud raises on purpose."""


class DomainError(EatCloudError):
    """A business rule said no: the caller asked for something the domain does not allow."""


class InfrastructureError(EatCloudError):
    """A dependency (Kafka, PostgreSQL, Redis, Kinesis) failed or could not be reached."""


class StackError(InfrastructureError):
    """The local development stack could not be installed, started or stopped."""


class PoisonMessage(DomainError):
    """A message no agent can handle (undecodable, unknown type, invalid): it goes to the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
