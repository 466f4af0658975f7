-- Money columns of orders are bigint: a cart of 100 lines of 99 items at the highest menu price
-- (10,000,000) is 9.9e10 minor units, past integer's 2^31. The API caps an order's total
-- (checkout.MAX_ORDER_TOTAL); the columns no longer set the limit. Rewrites both tables once.
ALTER TABLE orders
    ALTER COLUMN total TYPE bigint,
    ALTER COLUMN points TYPE bigint,
    ALTER COLUMN final_amount TYPE bigint;
ALTER TABLE order_view
    ALTER COLUMN total TYPE bigint,
    ALTER COLUMN points TYPE bigint;
