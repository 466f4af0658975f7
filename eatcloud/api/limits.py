"""Per-caller limits on the reads that cost the most: long-polls and deep pages.

A ``?wait=`` long-poll holds a request (and polls the read model) for up to 30 s, and a page
deep into a listing makes PostgreSQL skip every row before it. So: at most
``rate_limit.waiting_per_caller`` long-polls of one caller at once in an API process (429
past it), a token bucket per caller for long-polls and for searches (shared by every replica,
in Redis), and no page that starts past ``api.max_page_depth`` rows (422: narrow the search
or filter the list instead).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Query

from eatcloud.errors import RateLimited, Unprocessable


class WaitingSlots:
    """How many long-polls (or live update streams) each caller has open in this process,
    capped."""

    def __init__(self, per_caller: int, what: str = "waiting requests", bucket: str = "wait"):
        self.per_caller, self.what, self.bucket = per_caller, what, bucket
        self.open: Counter[str] = Counter()

    @asynccontextmanager
    async def slot(self, caller: str) -> AsyncIterator[None]:
        if self.open[caller] >= self.per_caller:
            raise RateLimited(
                f"at most {self.per_caller} {self.what} at once", retry_after=1, bucket=self.bucket
            )
        self.open[caller] += 1
        try:
            yield
        finally:
            self.open[caller] -= 1
            if not self.open[caller]:
                del self.open[caller]


# A page number and a page size in a list's query string.
Page = Annotated[int, Query(ge=1, le=10_000)]
Size = Annotated[int, Query(ge=1, le=100)]


def offset_of(page: int, size: int, max_depth: int) -> int:
    """The rows a page skips; 422 past ``max_depth``."""
    offset = (page - 1) * size
    if offset > max_depth:
        raise Unprocessable(
            f"pages start at most {max_depth} rows deep; narrow the search or filter the list"
        )
    return offset
