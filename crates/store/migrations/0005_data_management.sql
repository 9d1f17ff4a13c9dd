-- Data management (数据清理): cleanup runs, asked for by a person or made by the retention worker,
-- with their progress. Retention itself is an org setting (org_settings, name data_retention).

CREATE TABLE cleanup_runs (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    -- the subtree cleaned, as it was when the run began
    org_path {{path}} NOT NULL,
    -- manual (someone asked) or retention (the scheduled worker)
    source TEXT NOT NULL,
    -- retention runs only: one per org, cut-off (a local midnight) and exceptions, so that several
    -- instances run a day's retention once
    source_key TEXT,
    -- month, year, all, or the retention period such as 24m
    older_than TEXT NOT NULL,
    -- rows older than this go
    cutoff_at BIGINT NOT NULL,
    keep_rollups BIGINT NOT NULL,
    -- JSON array of subtree paths left alone (orgs below with a retention setting of their own)
    except_paths TEXT NOT NULL,
    -- running, done or failed
    status TEXT NOT NULL,
    ratings BIGINT NOT NULL DEFAULT 0,
    follow_ups BIGINT NOT NULL DEFAULT 0,
    presses BIGINT NOT NULL DEFAULT 0,
    services BIGINT NOT NULL DEFAULT 0,
    duties BIGINT NOT NULL DEFAULT 0,
    rollups BIGINT NOT NULL DEFAULT 0,
    user_id BIGINT REFERENCES users(id),
    username TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    -- moves with every chunk: a running run that stops moving was interrupted and is resumed
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    error TEXT
);
CREATE UNIQUE INDEX cleanup_runs_source_key ON cleanup_runs(source_key);
CREATE INDEX cleanup_runs_org ON cleanup_runs(org_path, id);
CREATE INDEX cleanup_runs_status ON cleanup_runs(status, updated_at);

-- deleting a rating looks for its follow-ups (and SQLite checks the foreign key) by rating
CREATE INDEX follow_ups_rating ON follow_ups(rating_id, status);
