-- The customers' points wallets, projected from points-events (``read_models``).
-- points_view: one row per customer, the account after the newest change applied (by the
-- account's version: an older event that comes late never moves it back).
CREATE TABLE points_view (
    customer_id text PRIMARY KEY,
    balance     bigint NOT NULL,
    held        bigint NOT NULL,
    version     integer NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- points_history: every change, once (its event id), newest first per customer.
CREATE TABLE points_history (
    event_id    text PRIMARY KEY,
    customer_id text NOT NULL,
    change      text NOT NULL,
    delta       bigint NOT NULL,
    held_delta  bigint NOT NULL,
    balance     bigint NOT NULL,
    held        bigint NOT NULL,
    version     integer NOT NULL,
    order_id    text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL
);
CREATE INDEX points_history_customer ON points_history (customer_id, version DESC);
