-- More statistics figures in the roll-ups (see store/src/stats.rs):
-- prompted: ended services whose rating prompt was offered (not cut short by the next Start
--   within 3 s of the End); prompt coverage = prompted / services.
-- duty_ms: on-duty time at the window (from duties, cut at local hour edges, counted when the
--   session ends); efficiency = services per on-duty hour, busyness = handle_ms / duty_ms.
-- hb00..hb15: ended services per handling-time bucket (edges in domain::stats::HANDLE_BUCKETS),
--   from which the p90 handling time is read.
-- Roll-ups written before this step hold zeros here: `keping stats rebuild` fills them in from
-- the raw rows still kept.
ALTER TABLE stats_rollup ADD COLUMN prompted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN duty_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb00 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb01 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb02 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb03 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb04 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb05 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb06 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb07 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb08 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb09 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb10 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb11 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb12 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb13 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb14 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_rollup ADD COLUMN hb15 BIGINT NOT NULL DEFAULT 0;
