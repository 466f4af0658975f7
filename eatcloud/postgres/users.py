"""Accounts in PostgreSQL: create one, find one by e-mail or id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from eatcloud.errors import Conflict


class EmailTaken(Conflict):
    """Another account already uses this e-mail address."""


@dataclass(frozen=True)
class User:
    id: str
    email: str
    role: str
    name: str
    password_hash: str


def _user(row: Any) -> User:
    return User(str(row["id"]), row["email"], row["role"], row["name"], row["password_hash"])


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
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        return None
    row = await pool.fetchrow("SELECT * FROM users WHERE id = $1", key)
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
