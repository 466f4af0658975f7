"""Accounts in PostgreSQL: create one, find one by e-mail or id, list, suspend, reactivate;
the owner's profile changes, password change and erasure."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from eatcloud.errors import Conflict
from eatcloud.postgres import addresses, contains_pattern, uuid_or_none

DELETED_NAME = "Deleted user"
# Stored in place of a deleted account's password hash: not an argon2 hash, so no password
# matches it (verifying it fails as an invalid hash).
UNUSABLE_PASSWORD = "!deleted"


class EmailTaken(Conflict):
    """Another account already uses this e-mail address."""


@dataclass(frozen=True)
class User:
    id: str
    email: str
    role: str
    name: str
    password_hash: str
    suspended_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None


@dataclass(frozen=True)
class Account:
    """An account as admins see it: no password hash, with its standing."""

    id: str
    email: str
    name: str
    role: str
    created_at: dt.datetime
    suspended_at: dt.datetime | None
    suspension_reason: str | None


_ACCOUNT_COLUMNS = "id, email, name, role, created_at, suspended_at, suspension_reason"


def _user(row: Any) -> User:
    return User(
        str(row["id"]),
        row["email"],
        row["role"],
        row["name"],
        row["password_hash"],
        row["suspended_at"],
        row["created_at"],
        row["deleted_at"],
    )


def _account(row: Any) -> Account:
    return Account(**{**dict(row), "id": str(row["id"])})


async def create_user(pool: Any, email: str, password_hash: str, role: str, name: str) -> User:
    user_id = uuid.uuid4()
    try:
        row = await pool.fetchrow(
            """INSERT INTO users (id, email, password_hash, role, name)
               VALUES ($1, $2, $3, $4, $5) RETURNING *""",
            user_id,
            email.lower(),
            password_hash,
            role,
            name,
        )
    except asyncpg.UniqueViolationError as exc:
        raise EmailTaken(email) from exc
    return _user(row)


async def user_by_email(pool: Any, email: str) -> User | None:
    row = await pool.fetchrow("SELECT * FROM users WHERE email = $1", email.lower())
    return None if row is None else _user(row)


async def user_by_id(pool: Any, user_id: str) -> User | None:
    """The user, or None (an id that is no UUID names nobody)."""
    key = uuid_or_none(user_id)
    row = None if key is None else await pool.fetchrow("SELECT * FROM users WHERE id = $1", key)
    return None if row is None else _user(row)


async def replace_password_hash(pool: Any, user_id: str, old: str, new: str) -> None:
    """Store ``new`` (the same password, hashed with today's parameters) unless the hash
    changed meanwhile (a password change wins)."""
    await pool.execute(
        "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
        uuid.UUID(user_id),
        old,
        new,
    )


async def password_hash_of(pool: Any, user_id: str) -> str | None:
    """The account's password hash as stored now (None for no such account)."""
    key = uuid_or_none(user_id)
    found: str | None = (
        None
        if key is None
        else await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", key)
    )
    return found


async def accounts(
    pool: Any,
    *,
    text: str | None,
    role: str | None,
    suspended: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[Account], int]:
    """Accounts whose e-mail or name contains ``text`` (any case), of ``role``, suspended or
    not, newest first; and how many there are in all."""
    where = """($1::text IS NULL OR email ILIKE $1 OR name ILIKE $1)
               AND ($2::text IS NULL OR role = $2)
               AND ($3::boolean IS NULL OR (suspended_at IS NOT NULL) = $3)"""
    pattern = None if text is None else contains_pattern(text)
    total = await pool.fetchval(
        f"SELECT count(*) FROM users WHERE {where}", pattern, role, suspended
    )
    rows = await pool.fetch(
        f"""SELECT {_ACCOUNT_COLUMNS} FROM users WHERE {where}
            ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5""",
        pattern,
        role,
        suspended,
        limit,
        offset,
    )
    return [_account(row) for row in rows], int(total)


async def account_by_id(pool: Any, user_id: str) -> Account | None:
    return await _one(pool, f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE id = $1", user_id)


async def suspend(pool: Any, user_id: str, reason: str | None) -> Account | None:
    """The account, suspended with ``reason``; one that is suspended already keeps its time
    and reason (a repeated suspension answers the same state). None for no such account."""
    return await _one(
        pool,
        f"""UPDATE users SET suspended_at = coalesce(suspended_at, now()),
                suspension_reason = CASE WHEN suspended_at IS NULL THEN $2
                                         ELSE suspension_reason END
            WHERE id = $1 RETURNING {_ACCOUNT_COLUMNS}""",
        user_id,
        reason,
    )


async def reactivate(pool: Any, user_id: str) -> Account | None:
    """The account in good standing again; None for no such account."""
    return await _one(
        pool,
        f"""UPDATE users SET suspended_at = NULL, suspension_reason = NULL
            WHERE id = $1 RETURNING {_ACCOUNT_COLUMNS}""",
        user_id,
    )


async def _one(pool: Any, sql: str, user_id: str, *args: Any) -> Account | None:
    """The account row that ``sql`` (with the id as $1) answers, or None."""
    key = uuid_or_none(user_id)
    row = None if key is None else await pool.fetchrow(sql, key, *args)
    return None if row is None else _account(row)


async def update_profile(
    pool: Any, user_id: str, *, name: str | None, email: str | None
) -> User | None:
    """The user with a new name and/or e-mail (None: unchanged); ``EmailTaken`` when another
    account has the e-mail; None for no such (or a deleted) account."""
    key = uuid_or_none(user_id)
    if key is None:
        return None
    try:
        row = await pool.fetchrow(
            """UPDATE users SET name = coalesce($2, name), email = coalesce($3, email)
               WHERE id = $1 AND deleted_at IS NULL RETURNING *""",
            key,
            name,
            None if email is None else email.lower(),
        )
    except asyncpg.UniqueViolationError as exc:
        raise EmailTaken(email or "") from exc
    return None if row is None else _user(row)


async def change_password(pool: Any, user_id: str, old: str, new: str) -> bool:
    """Store the hash of a new password, unless the hash is no longer ``old`` (another change
    came first): False then."""
    done = await pool.fetchval(
        """UPDATE users SET password_hash = $3
           WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL RETURNING true""",
        uuid.UUID(user_id),
        old,
        new,
    )
    return bool(done)


async def erase(pool: Any, user_id: str) -> None:
    """Delete the account the way that keeps its orders whole: the row stays (orders, stores
    and reviews name its id), its personal data goes (e-mail, name, password hash, addresses)
    and ``deleted_at`` is set. The placeholder e-mail is unique (it holds the id) and is no
    address at all (``.invalid`` is reserved, and login's e-mail pattern refuses it)."""
    key = uuid.UUID(user_id)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """UPDATE users SET email = $2, name = $3, password_hash = $4,
                   deleted_at = coalesce(deleted_at, now())
               WHERE id = $1""",
            key,
            f"deleted-{key}@invalid",
            DELETED_NAME,
            UNUSABLE_PASSWORD,
        )
        await addresses.remove_all(conn, user_id)
