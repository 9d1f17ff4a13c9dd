-- Statistics roll-ups, kept in the same transaction as the raw rows they count (see store/src/stats.rs).
-- One table, three grains: 'h' (local hour), 'd' (local day), 'm' (local month; day = first of the month).
-- Days and hours are the outlet's local ones (orgs.timezone of the window's org). Rows are per
-- outlet x window x staff x business type x option key: the row with key '' carries services, handle
-- time and removed presses; a row with an option key carries the counted ratings with that key.
-- staff_id / business_type_id are 0 when unknown, so that the unique key holds on both backends.
CREATE TABLE stats_rollup (
    id {{id}},
    grain TEXT NOT NULL,
    day TEXT NOT NULL,
    hour BIGINT NOT NULL,
    org_id BIGINT NOT NULL,
    window_id BIGINT NOT NULL,
    staff_id BIGINT NOT NULL,
    business_type_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    polarity TEXT NOT NULL,
    -- start of the bucket in UTC ms (for cleanup)
    bucket BIGINT NOT NULL,
    services BIGINT NOT NULL DEFAULT 0,
    handle_ms BIGINT NOT NULL DEFAULT 0,
    ratings BIGINT NOT NULL DEFAULT 0,
    rated BIGINT NOT NULL DEFAULT 0,
    rm_already_rated BIGINT NOT NULL DEFAULT 0,
    rm_duplicate_interval BIGINT NOT NULL DEFAULT 0,
    rm_no_prompt BIGINT NOT NULL DEFAULT 0,
    rm_too_old BIGINT NOT NULL DEFAULT 0,
    rm_no_service BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX stats_rollup_cell ON stats_rollup(grain, day, hour, org_id, window_id, staff_id, business_type_id, key, polarity);
CREATE INDEX stats_rollup_org ON stats_rollup(org_id, bucket);
