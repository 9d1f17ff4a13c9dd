-- Customer grading (客户分级): scoring models as versioned data, inputs per customer and period,
-- deduction events, runs and their results with per-criterion breakdowns.
-- No foreign keys to customers: merges and undone imports delete customers, and a grade result is
-- history (a result of a customer gone no longer shows, since every read joins customers for scope).

CREATE TABLE scoring_models (
    id {{id}},
    -- the org whose subtree uses the model; NULL for the built-in templates everyone sees
    org_id BIGINT REFERENCES orgs(id),
    -- composite, key_account, points_deduction for the templates; NULL for models people made
    template TEXT,
    name TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX scoring_models_template ON scoring_models(template);
CREATE INDEX scoring_models_org ON scoring_models(org_id, id);

-- editing a model adds a version; results keep the version they were computed with
CREATE TABLE scoring_model_versions (
    model_id BIGINT NOT NULL REFERENCES scoring_models(id),
    version BIGINT NOT NULL,
    -- JSON: the model in the format of API.md
    definition TEXT NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (model_id, version)
);

-- a customer's inputs for a period (YYYY-MM): JSON object criterion or metric code -> number|text
CREATE TABLE scoring_inputs (
    customer_id BIGINT NOT NULL,
    period TEXT NOT NULL,
    input_values TEXT NOT NULL,
    updated_by BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, period)
);
CREATE INDEX scoring_inputs_period ON scoring_inputs(period, customer_id);

-- violations and lapses that deductions count, in the period of their date
CREATE TABLE scoring_events (
    id {{id}},
    customer_id BIGINT NOT NULL,
    period TEXT NOT NULL,
    occurred_on TEXT NOT NULL,
    kind TEXT NOT NULL,
    note TEXT,
    created_by BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX scoring_events_customer ON scoring_events(customer_id, period);
CREATE INDEX scoring_events_period ON scoring_events(period, customer_id);

CREATE TABLE scoring_runs (
    id {{id}},
    model_id BIGINT NOT NULL REFERENCES scoring_models(id),
    model_version BIGINT NOT NULL,
    period TEXT NOT NULL,
    -- the subtree the run covered (the caller's scope within it), for listing runs by scope
    org_id BIGINT REFERENCES orgs(id),
    org_path {{path}} NOT NULL,
    scored BIGINT NOT NULL,
    -- manual or schedule
    trigger_kind TEXT NOT NULL,
    -- the run before this one of the same model, for the run-to-run diff
    previous_run_id BIGINT,
    -- JSON object grade -> count
    distribution TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX scoring_runs_model ON scoring_runs(model_id, period, id);

-- one row per customer and run; breakdown is compact JSON read back with the model version
CREATE TABLE grade_results (
    run_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    grade TEXT NOT NULL,
    -- ABC class by sales amount, and business scale tier (large, medium, small) within the industry
    abc TEXT,
    scale_tier TEXT,
    breakdown TEXT NOT NULL,
    PRIMARY KEY (run_id, customer_id)
);
CREATE INDEX grade_results_customer ON grade_results(customer_id, run_id)
