-- Scheduled notices: evaluation reports per org (daily / weekly / monthly), each sent once per
-- period; the outbox carries them like alerts (topic = the notice's kind).

CREATE TABLE report_schedules (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    -- daily, weekly or monthly
    frequency TEXT NOT NULL,
    -- JSON: the channels the report goes to
    channels TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    -- the report runs with this person's scope (who set it up)
    created_by BIGINT NOT NULL REFERENCES users(id),
    -- the last period sent (or skipped as already closed when the schedule was made), e.g.
    -- 2026-11-21, 2026-W47, 2026-10: a period is sent when it differs
    last_period TEXT NOT NULL,
    last_sent_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX report_schedules_org ON report_schedules(org_id, id);
CREATE INDEX outbox_topic ON outbox(topic, id);

-- A monthly grading run per org on schedule, with downgrade and churn warnings sent to channels.
CREATE TABLE grading_schedules (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    model_id BIGINT NOT NULL REFERENCES scoring_models(id),
    -- JSON: the channels the warnings go to
    channels TEXT NOT NULL,
    -- warn of customers with no order for this many days (days_since_last_order)
    idle_days BIGINT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    -- the last month run (YYYY-MM), or the month already closed when the schedule was made
    last_period TEXT NOT NULL,
    last_run_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX grading_schedules_org ON grading_schedules(org_id, id);
