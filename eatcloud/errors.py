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


class Unauthorized(DomainError):
    """The caller is not authenticated: no token, a bad one, or a revoked session."""


class Forbidden(DomainError):
    """The caller is authenticated but its role may not do this."""


class NotFound(DomainError):
    """No such thing, or not one the caller may see (we do not tell the two apart)."""


class Conflict(DomainError):
    """The request clashes with the current state (a duplicate, a sold-out item, a busy lock)."""


class Unprocessable(DomainError):
    """The request is well-formed but breaks a business rule."""


class Busy(EatCloudError):
    """This process is at capacity for this kind of work; the caller may retry after
    ``retry_after`` seconds (503)."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RateLimited(DomainError):
    """Too many requests; the caller may retry after ``retry_after`` seconds."""

    def __init__(self, detail: str, retry_after: int, bucket: str = "") -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.bucket = bucket  # which limit, for metrics (login, checkout)


# The exit status of a worker that stopped itself because a unit of records failed half way
# (EX_SOFTWARE). Its records are read again after a restart: restart it.
EXIT_UNIT_FAILED = 70
# A process refuses to run on its configuration (sysexits' EX_CONFIG): a missing or weak
# signing key for the API, an event log set to delete events for the worker.
EXIT_CONFIG = 78
EXIT_HISTORY_AT_RISK = EXIT_CONFIG
