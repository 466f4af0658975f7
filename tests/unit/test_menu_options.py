"""Menu option groups: ids and checks when set, choices priced at checkout (domain/options.py)."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from eatcloud.domain import options
from eatcloud.domain.options import OptionError
from eatcloud.streams import records as r

SIZE: dict[str, Any] = {
    "name": "Size",
    "required": True,
    "max_choices": 1,
    "choices": [{"name": "Small", "price_delta": -500}, {"name": "Large", "price_delta": 1_000}],
}


def _ids() -> Any:
    numbers = count()
    return lambda: f"id{next(numbers)}"


def test_new_groups_get_ids_and_named_ones_keep_theirs() -> None:
    [group] = options.settle([SIZE], [], 5_000, _ids())
    assert group["id"] == "id0" and [c["id"] for c in group["choices"]] == ["id1", "id2"]
    renamed = {
        **group,
        "name": "Portion",
        "choices": [*group["choices"], {"name": "Huge", "price_delta": 0}],
    }
    [again] = options.settle([renamed], [group], 5_000, _ids())
    assert again["id"] == "id0" and [c["id"] for c in again["choices"]] == ["id1", "id2", "id3"]
    with pytest.raises(OptionError, match="unknown option group id"):
        options.settle([{**SIZE, "id": "nope"}], [group], 5_000)


def test_choices_never_take_the_price_below_zero() -> None:
    options.settle([SIZE], [], 500)
    with pytest.raises(OptionError):
        options.settle([SIZE], [], 499)  # Small: -500
    cuts = {
        **SIZE,
        "required": False,
        "max_choices": 2,
        "choices": [{"name": "a", "price_delta": -300}, {"name": "b", "price_delta": -300}],
    }
    options.settle([cuts], [], 600)
    with pytest.raises(OptionError, match="below 0"):
        options.settle([cuts], [], 599)


def test_a_line_is_priced_and_named_by_its_choices() -> None:
    spice = {
        "name": "Spice",
        "required": False,
        "max_choices": 2,
        "choices": [{"name": "Hot", "price_delta": 200}, {"name": "Egg", "price_delta": 300}],
    }
    groups = options.settle([SIZE, spice], [], 5_000, _ids())
    large, hot, egg = "id2", "id4", "id5"
    assert options.choose(groups, [egg, large, hot], "m") == (1_500, ("Large", "Hot", "Egg"))
    for chosen, message in (
        ([hot], "choose from 'Size'"),
        (["id1", large], "at most 1"),
        ([large, "zz"], "menu m has no choice zz"),
    ):
        with pytest.raises(OptionError, match=message):
            options.choose(groups, chosen, "m")


def test_a_line_without_options_is_the_record_it_was_and_stock_is_summed_per_menu() -> None:
    plain = r.OrderLine(menu_id="m1", quantity=1, unit_price=1_000)
    assert plain.model_dump() == {"menu_id": "m1", "quantity": 1, "unit_price": 1_000}
    place = r.PlaceOrder(
        order_id="o",
        customer_id="c",
        store_id="s",
        lines=(
            r.OrderLine(menu_id="m1", quantity=2, unit_price=1_500, options=("Large",)),
            plain,
            r.OrderLine(menu_id="m2", quantity=1, unit_price=700),
        ),
    )
    assert place.stock_lines == (
        r.StockLine(menu_id="m1", quantity=3),
        r.StockLine(menu_id="m2", quantity=1),
    )
    assert r.PlaceOrder.model_validate_json(place.model_dump_json()) == place
