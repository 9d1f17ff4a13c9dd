-- Service evaluation: windows, terminals, duty, services, raw presses, counted ratings,
-- follow-ups for negative ratings, settings per org and the notification outbox.

CREATE TABLE org_settings (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    -- JSON
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE business_types (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX business_types_code ON business_types(org_id, code);

CREATE TABLE windows (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    business_type_id BIGINT REFERENCES business_types(id),
    is_open BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX windows_code ON windows(org_id, code);

CREATE TABLE terminals (
    id {{id}},
    window_id BIGINT NOT NULL REFERENCES windows(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX terminals_digest ON terminals(digest);
CREATE INDEX terminals_window ON terminals(window_id);

CREATE TABLE duties (
    id {{id}},
    window_id BIGINT NOT NULL REFERENCES windows(id),
    staff_id BIGINT NOT NULL REFERENCES users(id),
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    -- signed_out, moved (signed in elsewhere), replaced (someone else signed in here), stale
    end_reason TEXT
);
CREATE INDEX duties_window ON duties(window_id, ended_at);
CREATE INDEX duties_staff ON duties(staff_id, ended_at);

CREATE TABLE services (
    id {{id}},
    window_id BIGINT NOT NULL REFERENCES windows(id),
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    staff_id BIGINT REFERENCES users(id),
    business_type_id BIGINT REFERENCES business_types(id),
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    rating_id BIGINT
);
CREATE INDEX services_window_start ON services(window_id, started_at);
CREATE INDEX services_window_end ON services(window_id, ended_at);

CREATE TABLE presses (
    id {{id}},
    terminal_id BIGINT NOT NULL REFERENCES terminals(id),
    window_id BIGINT NOT NULL REFERENCES windows(id),
    idempotency_key TEXT NOT NULL,
    -- a digest of the body, so a replay with another body is told apart
    body_digest TEXT NOT NULL,
    key TEXT NOT NULL,
    pressed_at BIGINT NOT NULL,
    sent_at BIGINT,
    received_at BIGINT NOT NULL,
    -- the time it counts at under the clock policy (NULL: too old to count)
    effective_at BIGINT,
    service_id BIGINT,
    counted BIGINT NOT NULL,
    -- the rule that decided: NULL when counted, else already_rated, duplicate_interval, no_prompt, too_old
    reason TEXT,
    rating_id BIGINT
);
CREATE UNIQUE INDEX presses_idempotency ON presses(terminal_id, idempotency_key);
CREATE INDEX presses_window ON presses(window_id, received_at);

CREATE TABLE ratings (
    id {{id}},
    press_id BIGINT NOT NULL,
    service_id BIGINT,
    window_id BIGINT NOT NULL REFERENCES windows(id),
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    staff_id BIGINT REFERENCES users(id),
    business_type_id BIGINT REFERENCES business_types(id),
    key TEXT NOT NULL,
    -- label and polarity as configured when given: later option changes never rewrite them
    label TEXT NOT NULL,
    polarity TEXT NOT NULL,
    negative_reason TEXT,
    phone TEXT,
    rated_at BIGINT NOT NULL
);
-- one counted rating per prompt, whatever races
CREATE UNIQUE INDEX ratings_service ON ratings(service_id);
CREATE INDEX ratings_window ON ratings(window_id, rated_at);
CREATE INDEX ratings_org ON ratings(org_id, rated_at);

CREATE TABLE follow_ups (
    id {{id}},
    rating_id BIGINT NOT NULL REFERENCES ratings(id),
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    window_id BIGINT NOT NULL REFERENCES windows(id),
    staff_id BIGINT REFERENCES users(id),
    -- open or closed
    status TEXT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    closed_at BIGINT,
    closed_by BIGINT REFERENCES users(id)
);
CREATE INDEX follow_ups_org ON follow_ups(org_id, status, id);

CREATE TABLE outbox (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    topic TEXT NOT NULL,
    -- webhook, dingtalk, wecom, feishu, email or sms, and where to
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- pending, delivered or failed (gave up)
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_org ON outbox(org_id, id);
