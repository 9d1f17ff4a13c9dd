-- Narrower statistics roll-ups for the read path (see store/src/stats.rs): besides the full cells
-- (grains 'h', 'd', 'm': outlet x window x staff x business type x option key), the same figures
-- summed without the dimensions most requests do not ask for:
--   'oh', 'od', 'om': per outlet x option key (window, staff and business type 0): the totals,
--       org and outlet groupings, days, weeks, months, weekdays and hours of any subtree;
--   'wd', 'wm': per outlet x window x option key (staff and business type 0): the window grouping.
-- A request narrowed to a window or a staff member, or grouped by staff or business type, reads
-- the full cells through the window and staff indexes below; an outlet's subtree reads its cells
-- through the org index.
INSERT INTO stats_rollup (grain, day, hour, org_id, window_id, staff_id, business_type_id, key, polarity, bucket,
    services, handle_ms, ratings, rated, rm_already_rated, rm_duplicate_interval, rm_no_prompt, rm_too_old, rm_no_service,
    prompted, duty_ms, hb00, hb01, hb02, hb03, hb04, hb05, hb06, hb07, hb08, hb09, hb10, hb11, hb12, hb13, hb14, hb15)
SELECT 'o' || grain, day, hour, org_id, 0, 0, 0, key, polarity, MIN(bucket),
    SUM(services), SUM(handle_ms), SUM(ratings), SUM(rated), SUM(rm_already_rated), SUM(rm_duplicate_interval), SUM(rm_no_prompt), SUM(rm_too_old), SUM(rm_no_service),
    SUM(prompted), SUM(duty_ms), SUM(hb00), SUM(hb01), SUM(hb02), SUM(hb03), SUM(hb04), SUM(hb05), SUM(hb06), SUM(hb07), SUM(hb08), SUM(hb09), SUM(hb10), SUM(hb11), SUM(hb12), SUM(hb13), SUM(hb14), SUM(hb15)
FROM stats_rollup WHERE grain IN ('h', 'd', 'm')
GROUP BY grain, day, hour, org_id, key, polarity;
INSERT INTO stats_rollup (grain, day, hour, org_id, window_id, staff_id, business_type_id, key, polarity, bucket,
    services, handle_ms, ratings, rated, rm_already_rated, rm_duplicate_interval, rm_no_prompt, rm_too_old, rm_no_service,
    prompted, duty_ms, hb00, hb01, hb02, hb03, hb04, hb05, hb06, hb07, hb08, hb09, hb10, hb11, hb12, hb13, hb14, hb15)
SELECT 'w' || grain, day, hour, org_id, window_id, 0, 0, key, polarity, MIN(bucket),
    SUM(services), SUM(handle_ms), SUM(ratings), SUM(rated), SUM(rm_already_rated), SUM(rm_duplicate_interval), SUM(rm_no_prompt), SUM(rm_too_old), SUM(rm_no_service),
    SUM(prompted), SUM(duty_ms), SUM(hb00), SUM(hb01), SUM(hb02), SUM(hb03), SUM(hb04), SUM(hb05), SUM(hb06), SUM(hb07), SUM(hb08), SUM(hb09), SUM(hb10), SUM(hb11), SUM(hb12), SUM(hb13), SUM(hb14), SUM(hb15)
FROM stats_rollup WHERE grain IN ('d', 'm')
GROUP BY grain, day, hour, org_id, window_id, key, polarity;
CREATE INDEX stats_rollup_window ON stats_rollup(window_id, grain, day);
CREATE INDEX stats_rollup_staff ON stats_rollup(staff_id, grain, day);
CREATE INDEX stats_rollup_org_grain ON stats_rollup(org_id, grain, day);
