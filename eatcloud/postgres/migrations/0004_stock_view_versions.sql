-- Order-tolerant stock view: each row keeps the ledger item's version of the line it shows
-- (NULL for lines written before stock events carried versions), and a line that is not
-- newer (a late redelivery, say after its processed_events record was pruned) is ignored.
ALTER TABLE stock_view ADD COLUMN version integer;
