-- Live order updates (Server-Sent Events) resume from the last event a client saw: every
-- timeline row gets a number from one sequence, in the order the rows commit (the order
-- projection numbers its rows under an advisory lock, ``read_models.TIMELINE``), so a client
-- that saw number N has seen every row numbered below N. The sequence belongs to no column:
-- ``projections rebuild`` swaps the table for a new one that numbers from it too.
CREATE SEQUENCE order_timeline_seq;
ALTER TABLE order_timeline ADD COLUMN seq bigint NOT NULL DEFAULT nextval('order_timeline_seq');
CREATE INDEX order_timeline_seq_idx ON order_timeline (seq);
