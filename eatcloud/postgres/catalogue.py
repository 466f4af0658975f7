"""Categories, stores and menus in PostgreSQL (PostGIS for "near me")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from eatcloud.domain.hours import open_now
from eatcloud.errors import Conflict, NotFound, Unprocessable
from eatcloud.postgres import contains_pattern, uuid_or_none
from eatcloud.postgres.outbox import enqueue
from eatcloud.store_rules import schedule_of
from eatcloud.streams import records as r

_STORE_COLUMNS = """s.id, s.manager_id, s.name, s.description, s.category_code, s.address,
    ST_Y(s.location::geometry) AS lat, ST_X(s.location::geometry) AS lon, s.status, s.is_open,
    s.time_zone, s.hours, s.closed_dates, s.min_order_amount, s.delivery_radius_m, s.created_at"""
_MENU_COLUMNS = """m.id, m.store_id, m.name, m.description, m.price, m.unlimited, m.available,
    m.option_groups"""


def _uuid(value: str, what: str) -> uuid.UUID:
    key = uuid_or_none(value)
    if key is None:
        raise NotFound(f"no such {what}")
    return key


async def _update(
    db: Any, table: str, row_id: uuid.UUID, changes: dict[str, Any], allowed: set[str]
) -> None:
    """Set the ``allowed`` columns named in ``changes`` (column names never come from input)."""
    wanted = {k: v for k, v in changes.items() if k in allowed}
    if wanted:
        sets = ", ".join(f"{k} = ${n}" for n, k in enumerate(wanted, start=2))
        await db.execute(
            f"UPDATE {table} SET {sets}, updated_at = now() WHERE id = $1",
            row_id,
            *wanted.values(),
        )


def store_row(row: Any, now: datetime | None = None) -> dict[str, Any]:
    """A store as the API answers it, with ``open_now`` at ``now`` (default: the clock)."""
    out = dict(row)
    out["id"], out["manager_id"] = str(out["id"]), str(out["manager_id"])
    out["open_now"] = open_now(schedule_of(out), now or datetime.now(UTC))
    return out


def menu_row(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["id"], out["store_id"] = str(out["id"]), str(out["store_id"])
    return out


async def create_category(db: Any, code: str, name: str) -> dict[str, Any]:
    try:
        row = await db.fetchrow(
            "INSERT INTO categories (code, name) VALUES ($1, $2) RETURNING code, name", code, name
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"category {code} exists") from exc
    return dict(row)


async def list_categories(db: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("SELECT code, name FROM categories ORDER BY code")]


async def delete_category(db: Any, code: str) -> None:
    try:
        done = await db.execute("DELETE FROM categories WHERE code = $1", code)
    except asyncpg.ForeignKeyViolationError as exc:
        raise Conflict(f"stores still use category {code}") from exc
    if done.endswith(" 0"):
        raise NotFound(f"no category {code}")


async def create_store(
    db: Any, manager_id: str, fields: dict[str, Any], quota: int
) -> dict[str, Any]:
    """A new PENDING store, unless its manager has ``quota`` stores already (409)."""
    try:
        row = await db.fetchrow(
            f"""WITH s AS (
                  INSERT INTO stores (id, manager_id, name, description, category_code, address,
                                      location, time_zone)
                  SELECT $1, $2, $3, $4, $5, $6, ST_SetSRID(ST_MakePoint($7, $8), 4326), $10
                  WHERE (SELECT count(*) FROM stores WHERE manager_id = $2) < $9
                  RETURNING *)
                SELECT {_STORE_COLUMNS} FROM s""",
            uuid.uuid4(),
            uuid.UUID(manager_id),
            fields["name"],
            fields["description"],
            fields["category_code"],
            fields["address"],
            fields["lon"],
            fields["lat"],
            quota,
            fields["time_zone"],
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise Unprocessable(f"unknown category {fields['category_code']}") from exc
    if row is None:
        raise Conflict(f"a manager may have at most {quota} stores")
    return store_row(row)


async def get_store(db: Any, store_id: str) -> dict[str, Any]:
    row = await db.fetchrow(
        f"SELECT {_STORE_COLUMNS} FROM stores s WHERE s.id = $1", _uuid(store_id, "store")
    )
    if row is None:
        raise NotFound("no such store")
    return store_row(row)


# The columns of a store's own terms for orders (eatcloud/store_rules.py); ``hours`` None
# clears the hours (open whenever is_open).
STORE_TERMS = {"time_zone", "hours", "closed_dates", "min_order_amount", "delivery_radius_m"}


async def update_store(db: Any, store_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    await _update(
        db,
        "stores",
        _uuid(store_id, "store"),
        changes,
        STORE_TERMS | {"name", "description", "address", "is_open"},
    )
    return await get_store(db, store_id)


# An admin's decisions about a store: the status each one sets, the statuses it may be taken
# from (None: any) and what a refusal says. Only an APPROVED store takes orders, shows to
# customers and changes its menus. Reactivating returns a store to APPROVED, so only an
# APPROVED store can be suspended: suspending a PENDING one must not become a way around its
# approval. Repeating a decision answers the same state.
STORE_DECISIONS: dict[str, tuple[str, tuple[str, ...] | None, str]] = {
    "approve": ("APPROVED", None, ""),
    "reject": ("REJECTED", None, ""),
    "suspend": ("SUSPENDED", ("APPROVED", "SUSPENDED"), "only an APPROVED store is suspended"),
    "reactivate": (
        "APPROVED",
        ("SUSPENDED", "APPROVED"),
        "only a SUSPENDED store is reactivated (approve a PENDING or REJECTED one)",
    ),
}


async def decide_store(db: Any, store_id: str, decision: str) -> dict[str, Any]:
    """The store after an admin's ``decision`` (``STORE_DECISIONS``); 404 for no such store,
    409 when the store's status does not allow it."""
    status, allowed, refusal = STORE_DECISIONS[decision]
    done = await db.execute(
        """UPDATE stores SET status = $2, updated_at = now()
           WHERE id = $1 AND ($3::text[] IS NULL OR status = ANY($3::text[]))""",
        _uuid(store_id, "store"),
        status,
        allowed,
    )
    store = await get_store(db, store_id)  # 404 when there is no such store
    if done.endswith(" 0"):
        raise Conflict(f"the store is {store['status']}: {refusal}")
    return store


async def stores_of(db: Any, manager_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {_STORE_COLUMNS} FROM stores s WHERE s.manager_id = $1 ORDER BY s.created_at",
        uuid.UUID(manager_id),
    )
    return [store_row(r) for r in rows]


async def stores_by_status(db: Any, status: str | None) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"""SELECT {_STORE_COLUMNS} FROM stores s WHERE $1::text IS NULL OR s.status = $1
            ORDER BY s.created_at""",
        status,
    )
    return [store_row(r) for r in rows]


async def nearby(
    db: Any, lat: float, lon: float, radius_m: float, category: str | None, limit: int
) -> list[dict[str, Any]]:
    """Approved stores open now within ``radius_m`` of (lat, lon), nearest first.

    PostGIS finds the candidates nearest first; whether each is open now is decided in Python
    by the one open-now rule (``eatcloud.domain.hours``), so the candidates come in batches
    until ``limit`` open ones are found or none are left.
    """
    now, offset, batch = datetime.now(UTC), 0, max(limit * 2, 50)
    found: list[dict[str, Any]] = []
    while len(found) < limit:
        rows = await db.fetch(
            f"""SELECT {_STORE_COLUMNS},
                       ST_Distance(s.location, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography)
                           AS distance_m
                FROM stores s
                WHERE s.status = 'APPROVED' AND s.is_open
                  AND ($4::text IS NULL OR s.category_code = $4)
                  AND ST_DWithin(s.location, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography,
                                 $3)
                ORDER BY distance_m, s.id
                LIMIT $5 OFFSET $6""",
            lat,
            lon,
            radius_m,
            category,
            batch,
            offset,
        )
        stores = [store_row(r, now) for r in rows]
        found += [{**s, "distance_m": round(s["distance_m"], 1)} for s in stores if s["open_now"]]
        if len(rows) < batch:
            break
        offset += batch
    return found[:limit]


async def search(db: Any, q: str, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """Approved stores whose name, description or a live menu's name contains ``q``."""
    pattern = contains_pattern(q)
    where = """s.status = 'APPROVED' AND (s.name ILIKE $1 OR s.description ILIKE $1 OR EXISTS (
                 SELECT 1 FROM menus m WHERE m.store_id = s.id AND m.deleted_at IS NULL
                 AND m.name ILIKE $1))"""
    total = await db.fetchval(f"SELECT count(*) FROM stores s WHERE {where}", pattern)
    rows = await db.fetch(
        f"""SELECT {_STORE_COLUMNS} FROM stores s WHERE {where}
            ORDER BY lower(s.name), s.id LIMIT $2 OFFSET $3""",
        pattern,
        size,
        (page - 1) * size,
    )
    return [store_row(r) for r in rows], int(total)


async def create_menu(db: Any, store_id: str, fields: dict[str, Any], quota: int) -> dict[str, Any]:
    """A new menu, unless the store has ``quota`` menus (not deleted) already (409)."""
    row = await db.fetchrow(
        f"""WITH m AS (
              INSERT INTO menus (id, store_id, name, description, price, unlimited,
                                 option_groups)
              SELECT $1, $2, $3, $4, $5, $6, $8
              WHERE (SELECT count(*) FROM menus WHERE store_id = $2 AND deleted_at IS NULL) < $7
              RETURNING *)
            SELECT {_MENU_COLUMNS} FROM m""",
        uuid.uuid4(),
        uuid.UUID(store_id),
        fields["name"],
        fields["description"],
        fields["price"],
        fields["unlimited"],
        quota,
        fields["option_groups"],
    )
    if row is None:
        raise Conflict(f"a store may have at most {quota} menus")
    return menu_row(row)


async def menus_of(db: Any, store_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"""SELECT {_MENU_COLUMNS} FROM menus m WHERE m.store_id = $1 AND m.deleted_at IS NULL
            ORDER BY m.created_at, m.id""",
        _uuid(store_id, "store"),
    )
    return [menu_row(r) for r in rows]


async def get_menu(db: Any, store_id: str, menu_id: str) -> dict[str, Any]:
    row = await db.fetchrow(
        f"""SELECT {_MENU_COLUMNS} FROM menus m
            WHERE m.id = $1 AND m.store_id = $2 AND m.deleted_at IS NULL""",
        _uuid(menu_id, "menu"),
        _uuid(store_id, "store"),
    )
    if row is None:
        raise NotFound("no such menu in this store")
    return menu_row(row)


async def adjust_stock(
    db: Any,
    store_id: str,
    menu_id: str,
    *,
    delta: int,
    unlimited: bool | None,
    reason: str,
    headers: dict[str, str],
) -> r.AdjustStock:
    """Queue a menu's stock change for the stock agent (through the outbox); 404 if no menu.

    The API's store managers and the ``eatcloud stock adjust`` command both come here.
    """
    await get_menu(db, store_id, menu_id)
    adjust = r.AdjustStock(
        store_id=store_id, menu_id=menu_id, delta=delta, unlimited=unlimited, reason=reason
    )
    async with db.acquire() as conn, conn.transaction():
        await enqueue(conn, adjust, aggregate_type="stock", headers=headers)
    return adjust


async def update_menu(
    db: Any, store_id: str, menu_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Set the menu's changed fields; ``option_groups`` come settled (``domain.options``)."""
    await get_menu(db, store_id, menu_id)
    await _update(
        db,
        "menus",
        uuid.UUID(menu_id),
        changes,
        {"name", "description", "price", "available", "option_groups"},
    )
    return await get_menu(db, store_id, menu_id)


async def delete_menu(db: Any, store_id: str, menu_id: str) -> None:
    await get_menu(db, store_id, menu_id)
    await db.execute("UPDATE menus SET deleted_at = now() WHERE id = $1", uuid.UUID(menu_id))
