-- EatCloud's first schema: the API's state, the outbox, and the read models (CQRS).
-- Money is in minor units (integer cents). Ids made by the API are UUIDs.

CREATE EXTENSION IF NOT EXISTS postgis;

-- Accounts. Passwords are argon2 hashes; e-mails are stored lower-cased.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('CUSTOMER', 'MANAGER', 'ADMIN')),
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Store categories, managed by admins.
CREATE TABLE categories (
    code       text PRIMARY KEY CHECK (code ~ '^[A-Z0-9_]{2,32}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Stores: created by a manager, visible to customers once an admin approved them.
CREATE TABLE stores (
    id            uuid PRIMARY KEY,
    manager_id    uuid NOT NULL REFERENCES users (id),
    name          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    category_code text NOT NULL REFERENCES categories (code),
    address       text NOT NULL DEFAULT '',
    location      geography (Point, 4326) NOT NULL,
    status        text NOT NULL DEFAULT 'PENDING'
                  CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'SUSPENDED')),
    is_open       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stores_location_idx ON stores USING gist (location);
CREATE INDEX stores_manager_idx ON stores (manager_id);
CREATE INDEX stores_name_idx ON stores (lower(name) text_pattern_ops);

-- Menus: the server's prices are the only prices (the original trusted the client's).
CREATE TABLE menus (
    id          uuid PRIMARY KEY,
    store_id    uuid NOT NULL REFERENCES stores (id),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    price       integer NOT NULL CHECK (price >= 0),
    unlimited   boolean NOT NULL DEFAULT false,
    available   boolean NOT NULL DEFAULT true,
    deleted_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX menus_store_idx ON menus (store_id) WHERE deleted_at IS NULL;

-- Orders as taken at checkout (the command side). Their progress is in order_view.
CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    customer_id      uuid NOT NULL REFERENCES users (id),
    store_id         uuid NOT NULL REFERENCES stores (id),
    lines            jsonb NOT NULL,
    total            integer NOT NULL CHECK (total >= 0),
    points           integer NOT NULL DEFAULT 0 CHECK (points >= 0 AND points <= total),
    final_amount     integer NOT NULL CHECK (final_amount = total - points),
    fulfilment       text NOT NULL CHECK (fulfilment IN ('DELIVERY', 'PICKUP')),
    delivery_address text,
    idempotency_key  text,
    request_hash     text,
    response         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, idempotency_key)
);

-- The transactional outbox: written with the state change, published by the relay.
-- payload holds the record's exact JSON bytes (encoded once, never re-wrapped).
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    topic          text NOT NULL,
    key            text NOT NULL,
    type           text NOT NULL,
    payload        bytea NOT NULL,
    headers        jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

-- Read models, written only by the projections.
CREATE TABLE order_view (
    order_id     text PRIMARY KEY,
    customer_id  text NOT NULL,
    store_id     text NOT NULL,
    status       text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    total        integer NOT NULL,
    points       integer NOT NULL DEFAULT 0,
    lines        jsonb NOT NULL,
    placed_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    events       integer NOT NULL DEFAULT 0
);
CREATE INDEX order_view_customer_idx ON order_view (customer_id, placed_at DESC);
CREATE INDEX order_view_store_idx ON order_view (store_id, placed_at DESC);

CREATE TABLE order_timeline (
    order_id    text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    status      text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, event_id)
);

CREATE TABLE stock_view (
    store_id   text NOT NULL,
    menu_id    text NOT NULL,
    on_hand    integer NOT NULL,
    reserved   integer NOT NULL,
    sold       integer NOT NULL,
    unlimited  boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (store_id, menu_id)
);

CREATE TABLE store_sales (
    store_id  text NOT NULL,
    day       date NOT NULL,
    orders    integer NOT NULL DEFAULT 0,
    revenue   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, day)
);

-- Which events a projection has applied: replays and redeliveries change nothing.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- One review per completed order, by its customer.
CREATE TABLE reviews (
    order_id    uuid PRIMARY KEY REFERENCES orders (id),
    store_id    uuid NOT NULL REFERENCES stores (id),
    customer_id uuid NOT NULL REFERENCES users (id),
    rating      integer NOT NULL CHECK (rating BETWEEN 1 AND 5),
    content     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviews_store_idx ON reviews (store_id, created_at DESC);
