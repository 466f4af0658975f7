-- Suspended accounts (docs/api.md, Admins). While suspended_at is set the account cannot log
-- in, and its sessions are revoked (their standing lives in Redis, eatcloud/api/security.py);
-- suspension_reason is the admin's note, shown to admins only. Both are NULL for an account in
-- good standing. Nullable columns without a default: adding them rewrites nothing.
ALTER TABLE users
    ADD COLUMN suspended_at      timestamptz,
    ADD COLUMN suspension_reason text;

-- The admins' list of accounts, newest first, a page at a time. A plain CREATE INDEX blocks
-- signups while it builds: on a large users table, build it by hand first with CREATE INDEX
-- CONCURRENTLY under this name, and this migration finds it and does nothing.
CREATE INDEX IF NOT EXISTS users_created_idx ON users (created_at DESC, id DESC);
