-- Indexes for the pruning job (eatcloud/postgres/pruning.py): each round finds the oldest
-- published outbox rows and the oldest processed_events records by an index range scan,
-- instead of reading the whole table every hour to find what is past its keep time.
--
-- Migrations run in a transaction, so these cannot be built CONCURRENTLY here, and a plain
-- CREATE INDEX blocks writes to its table while it builds (the outbox: checkouts wait). On a
-- database whose tables have already grown large, build them by hand first, with these
-- names, using CREATE INDEX CONCURRENTLY; this migration then finds them and does nothing.
CREATE INDEX IF NOT EXISTS outbox_published_idx
    ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS processed_events_processed_at_idx
    ON processed_events (processed_at);
