-- Profiles and address books (docs/api.md, Profile and addresses).
-- users.deleted_at: set when the owner deleted the account. The row stays (orders, stores and
-- reviews reference the id, so order history and sales stay whole), its personal data erased:
-- e-mail 'deleted-<id>@invalid', name 'Deleted user', a password hash no password matches.
-- Nullable, no default: adding it rewrites nothing.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

-- A customer's saved delivery addresses: at most 20 (checked by the API under a lock on the
-- customer's users row), and exactly one default while there are any (this index allows at
-- most one; the API keeps at least one).
CREATE TABLE addresses (
    id          uuid PRIMARY KEY,
    customer_id uuid NOT NULL REFERENCES users (id),
    label       text NOT NULL,
    line        text NOT NULL,
    location    geography (Point, 4326) NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_customer_idx ON addresses (customer_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX addresses_one_default_idx ON addresses (customer_id) WHERE is_default;
