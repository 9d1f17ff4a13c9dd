-- Roll-up additions not yet folded into stats_rollup (see store/src/stats.rs). Every raw write
-- (a batch of presses, an End, a duty session ended) appends what it adds here, once per finest
-- cell (local hour x outlet x window x staff x business type x option key), in its own
-- transaction: one append instead of an upsert into each of stats_rollup's eight grains. The
-- press writer folds them into stats_rollup a few outlets at a time, every few seconds, and
-- deletes them in the same transaction. Statistics read both tables, so nothing waits for a fold.
CREATE TABLE stats_pending (
    id {{id}},
    day TEXT NOT NULL,
    hour BIGINT NOT NULL,
    month TEXT NOT NULL,
    hour_start BIGINT NOT NULL,
    day_start BIGINT NOT NULL,
    month_start BIGINT NOT NULL,
    org_id BIGINT NOT NULL,
    window_id BIGINT NOT NULL,
    staff_id BIGINT NOT NULL,
    business_type_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    polarity TEXT NOT NULL,
    services BIGINT NOT NULL,
    handle_ms BIGINT NOT NULL,
    ratings BIGINT NOT NULL,
    rated BIGINT NOT NULL,
    rm_already_rated BIGINT NOT NULL,
    rm_duplicate_interval BIGINT NOT NULL,
    rm_no_prompt BIGINT NOT NULL,
    rm_too_old BIGINT NOT NULL,
    rm_no_service BIGINT NOT NULL,
    prompted BIGINT NOT NULL,
    duty_ms BIGINT NOT NULL,
    hb00 BIGINT NOT NULL,
    hb01 BIGINT NOT NULL,
    hb02 BIGINT NOT NULL,
    hb03 BIGINT NOT NULL,
    hb04 BIGINT NOT NULL,
    hb05 BIGINT NOT NULL,
    hb06 BIGINT NOT NULL,
    hb07 BIGINT NOT NULL,
    hb08 BIGINT NOT NULL,
    hb09 BIGINT NOT NULL,
    hb10 BIGINT NOT NULL,
    hb11 BIGINT NOT NULL,
    hb12 BIGINT NOT NULL,
    hb13 BIGINT NOT NULL,
    hb14 BIGINT NOT NULL,
    hb15 BIGINT NOT NULL
);
CREATE INDEX stats_pending_org ON stats_pending(org_id, day);
