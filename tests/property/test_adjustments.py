"""Stock and points adjustments apply once, however often and however late they come again.

The outbox relay re-publishes up to a whole batch of rows after a crash between the broker's
acknowledgement and PostgreSQL's commit, and a worker that crashed mid-unit reads its batch
again; onboarding a store sends hundreds of adjustments. So: adjustments for one store and one
customer go through the real handlers (``driver.Agents``) in units of several messages; some
units are cut short by a crash and delivered again, and at the end whole earlier batches are
delivered again, long after. Each adjustment counts exactly once.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eatcloud.domain.saga import SagaPolicy
from eatcloud.streams import records as r
from tests.property.driver import Agents

STORE, MENU, CUSTOMER = "store-1", "burger", "customer-1"


def batches(records: list[r.Record], size: int) -> list[list[r.Record]]:
    return [records[n : n + size] for n in range(0, len(records), size)]


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 200),  # a store onboarding its menus sends hundreds
    size=st.integers(1, 40),
    data=st.data(),
)
def test_redelivered_adjustment_batches_count_once(
    count: int, size: int, data: st.DataObject
) -> None:
    deltas = [1 + n % 7 for n in range(count)]
    agents = Agents(SagaPolicy(), 20.0, lambda: 0.0)
    stock_batches = batches(
        [
            r.AdjustStock(event_id=f"stock-{n}", store_id=STORE, menu_id=MENU, delta=delta)
            for n, delta in enumerate(deltas)
        ],
        size,
    )
    points_batches = batches(
        [
            r.AdjustPoints(event_id=f"points-{n}", customer_id=CUSTOMER, delta=delta)
            for n, delta in enumerate(deltas)
        ],
        size,
    )
    for batch in [*stock_batches, *points_batches]:
        if data.draw(st.booleans(), label="crash mid-unit"):
            cut = data.draw(st.integers(0, 2 * len(batch)), label="writes that got out")
            agents.deliver_unit(batch, cut=cut)
        agents.deliver_unit(batch)  # read again from the committed offset
    again = data.draw(
        st.lists(st.sampled_from([*stock_batches, *points_batches]), max_size=6),
        label="whole batches published again",
    )
    for batch in again:
        agents.deliver_unit(batch)

    assert agents.ledger(STORE).items[MENU].on_hand == sum(deltas)
    assert agents.account(CUSTOMER).balance == sum(deltas)
