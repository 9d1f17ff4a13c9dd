-- Grading results and inputs kept in their primary key's order on SQLite (WITHOUT ROWID): a run
-- reads a million customers' inputs and writes a million results, and a rowid table keeps a
-- second b-tree for the key, so every row was found or written twice. On PostgreSQL
-- {{without_rowid}} is empty and the tables come back as they were. Columns keep their order.
CREATE TABLE grade_results_clustered (
    run_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    grade TEXT NOT NULL,
    abc TEXT,
    scale_tier TEXT,
    breakdown TEXT NOT NULL,
    lifecycle TEXT,
    stars BIGINT,
    PRIMARY KEY (run_id, customer_id)
){{without_rowid}};
INSERT INTO grade_results_clustered (run_id, customer_id, score, grade, abc, scale_tier, breakdown, lifecycle, stars)
SELECT run_id, customer_id, score, grade, abc, scale_tier, breakdown, lifecycle, stars FROM grade_results;
DROP TABLE grade_results;
ALTER TABLE grade_results_clustered RENAME TO grade_results;
CREATE INDEX grade_results_customer ON grade_results(customer_id, run_id);

CREATE TABLE scoring_inputs_clustered (
    customer_id BIGINT NOT NULL,
    period TEXT NOT NULL,
    input_values TEXT NOT NULL,
    updated_by BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, period)
){{without_rowid}};
INSERT INTO scoring_inputs_clustered (customer_id, period, input_values, updated_by, updated_at)
SELECT customer_id, period, input_values, updated_by, updated_at FROM scoring_inputs;
DROP TABLE scoring_inputs;
ALTER TABLE scoring_inputs_clustered RENAME TO scoring_inputs;
CREATE INDEX scoring_inputs_period ON scoring_inputs(period, customer_id)
