"""A menu's option groups (size, spice...): settled when a manager sets them, chosen at checkout.

A group is ``{id, name, required, max_choices, choices: [{id, name, price_delta}]}``, stored
as JSON on the menu. The server gives the ids (short random hex): a manager sends groups and
choices without ids to add them, or with the id of one of the menu's existing ones to keep it
(so a renamed "Large" keeps the id a client holds); an id the menu does not have is refused.
Prices are minor units; a line's unit price is the menu's price plus the chosen deltas, and the
cheapest set of choices the groups allow never takes it below 0.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from eatcloud.errors import Unprocessable

MAX_GROUPS = 10
MAX_CHOICES = 20
MAX_DELTA = 1_000_000


class OptionError(Unprocessable):
    """Groups a manager may not set, or choices a customer may not make (422)."""


def new_id() -> str:
    return secrets.token_hex(4)


def settle(
    groups: Sequence[dict[str, Any]],
    existing: Sequence[dict[str, Any]],
    price: int,
    make_id: Callable[[], str] = new_id,
) -> list[dict[str, Any]]:
    """The groups to store: ids given to the new ones, kept for the existing ones, checked
    against ``price`` (the menu's price once the change is made)."""
    old_groups = {g["id"] for g in existing}
    old_choices = {c["id"] for g in existing for c in g["choices"]}
    seen: set[str] = set()

    def keep(given: str | None, known: set[str], what: str) -> str:
        if given is None:
            given = make_id()
            while given in seen or given in old_groups or given in old_choices:
                given = make_id()
        elif given not in known:
            raise OptionError(f"unknown {what} id {given}: leave it out to add a new one")
        if given in seen:
            raise OptionError(f"{what} id {given} appears twice")
        seen.add(given)
        return given

    out = [
        {
            "id": keep(g.get("id"), old_groups, "option group"),
            "name": g["name"],
            "required": g["required"],
            "max_choices": g["max_choices"],
            "choices": [
                {
                    "id": keep(c.get("id"), old_choices, "choice"),
                    "name": c["name"],
                    "price_delta": c["price_delta"],
                }
                for c in g["choices"]
            ],
        }
        for g in groups
    ]
    check(out, price)
    return out


def check(groups: Sequence[dict[str, Any]], price: int) -> None:
    """Refuse groups whose shape or deltas do not fit a menu of ``price``."""
    if len(groups) > MAX_GROUPS:
        raise OptionError(f"a menu has at most {MAX_GROUPS} option groups")
    cheapest = 0
    for g in groups:
        choices = g["choices"]
        if not 1 <= len(choices) <= MAX_CHOICES:
            raise OptionError(f"option group {g['name']!r} needs 1 to {MAX_CHOICES} choices")
        if not 1 <= g["max_choices"] <= len(choices):
            raise OptionError(
                f"option group {g['name']!r}: max_choices must be 1 to its number of choices"
            )
        for c in choices:
            if not -price <= c["price_delta"] <= MAX_DELTA:
                raise OptionError(
                    f"choice {c['name']!r}: price_delta must be between -{price} (the menu's "
                    f"price) and {MAX_DELTA}"
                )
        # The most a customer can take off: the group's max_choices most negative deltas.
        cuts = sorted(c["price_delta"] for c in choices if c["price_delta"] < 0)
        cheapest += sum(cuts[: g["max_choices"]])
    if price + cheapest < 0:
        raise OptionError(f"the cheapest choices take the price ({price}) below 0")


def requires_choice(groups: Sequence[dict[str, Any]]) -> bool:
    return any(g["required"] for g in groups)


def choose(
    groups: Sequence[dict[str, Any]], chosen: Sequence[str], menu_id: str
) -> tuple[int, tuple[str, ...]]:
    """The price delta and the names (in the menu's order) of ``chosen`` choice ids on a line
    of ``menu_id``: every required group answered, none over its max_choices, no unknown id."""
    wanted = set(chosen)
    delta, names, known = 0, list[str](), set[str]()
    for g in groups:
        picked = [c for c in g["choices"] if c["id"] in wanted]
        known.update(c["id"] for c in picked)
        if g["required"] and not picked:
            raise OptionError(f"menu {menu_id}: choose from {g['name']!r} (required)")
        if len(picked) > g["max_choices"]:
            raise OptionError(
                f"menu {menu_id}: at most {g['max_choices']} choice(s) from {g['name']!r}"
            )
        delta += sum(c["price_delta"] for c in picked)
        names += [c["name"] for c in picked]
    if unknown := sorted(wanted - known):
        raise OptionError(f"menu {menu_id} has no choice {', '.join(unknown)}")
    return delta, tuple(names)
