-- A store's own terms (docs/api.md, Stores): opening hours in its time zone, closed dates, a
-- minimum order amount and a delivery radius. The defaults keep every existing store as it
-- was: no hours (open whenever is_open), no closed dates, no minimum, and a 3 km radius, which
-- only a DELIVERY checkout that gives its coordinates meets. time_zone's default is the
-- default of EATCLOUD_API__STORE_TIME_ZONE; new stores get that setting's value explicitly.
-- Constant defaults: adding these columns rewrites nothing.
ALTER TABLE stores
    ADD COLUMN time_zone         text    NOT NULL DEFAULT 'Asia/Seoul',
    ADD COLUMN hours             jsonb,
    ADD COLUMN closed_dates      date[]  NOT NULL DEFAULT '{}',
    ADD COLUMN min_order_amount  bigint  NOT NULL DEFAULT 0
               CHECK (min_order_amount >= 0),
    ADD COLUMN delivery_radius_m integer NOT NULL DEFAULT 3000
               CHECK (delivery_radius_m > 0);
