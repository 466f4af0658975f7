-- Order-tolerant projections: an order's row keeps the lifecycle stage of the newest event it
-- has applied (version), whether its OrderPlaced has been applied (placed: a redelivered
-- OrderPlaced may come after a later event), and whether its sale is in store_sales (counted).
ALTER TABLE order_view
    ADD COLUMN version smallint NOT NULL DEFAULT 0,
    ADD COLUMN placed  boolean  NOT NULL DEFAULT true,
    ADD COLUMN counted boolean  NOT NULL DEFAULT false;

UPDATE order_view SET
    version = CASE status WHEN 'PENDING' THEN 1 WHEN 'PAID' THEN 2 WHEN 'ACCEPTED' THEN 3 ELSE 4 END,
    counted = (status = 'COMPLETED');

ALTER TABLE order_view ALTER COLUMN placed SET DEFAULT false;
