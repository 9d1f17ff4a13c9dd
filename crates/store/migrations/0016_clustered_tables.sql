-- Tables keyed by two columns kept in their primary key's order on SQLite (WITHOUT ROWID): a
-- rowid table keeps a second b-tree for the key, so every row was found or written twice. A
-- grading run reads a million customers' inputs and writes a million results; an import of
-- 100,000 customers writes some six million search terms; a search reads terms by prefix. On
-- PostgreSQL {{without_rowid}} is empty and the tables come back as they were. Columns keep their
-- order, and rows are copied in key order.
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
SELECT run_id, customer_id, score, grade, abc, scale_tier, breakdown, lifecycle, stars FROM grade_results ORDER BY run_id, customer_id;
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
SELECT customer_id, period, input_values, updated_by, updated_at FROM scoring_inputs ORDER BY customer_id, period;
DROP TABLE scoring_inputs;
ALTER TABLE scoring_inputs_clustered RENAME TO scoring_inputs;
CREATE INDEX scoring_inputs_period ON scoring_inputs(period, customer_id);

CREATE TABLE customer_terms_clustered (
    term {{ordered_text}} NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    PRIMARY KEY (term, customer_id)
){{without_rowid}};
INSERT INTO customer_terms_clustered (term, customer_id) SELECT term, customer_id FROM customer_terms ORDER BY term, customer_id;
DROP TABLE customer_terms;
ALTER TABLE customer_terms_clustered RENAME TO customer_terms;
CREATE INDEX customer_terms_customer ON customer_terms(customer_id);

CREATE TABLE customer_phones_clustered (
    digits TEXT NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    PRIMARY KEY (digits, customer_id)
){{without_rowid}};
INSERT INTO customer_phones_clustered (digits, customer_id) SELECT digits, customer_id FROM customer_phones ORDER BY digits, customer_id;
DROP TABLE customer_phones;
ALTER TABLE customer_phones_clustered RENAME TO customer_phones;
CREATE INDEX customer_phones_customer ON customer_phones(customer_id);

CREATE TABLE customer_tags_clustered (
    tag TEXT NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    PRIMARY KEY (tag, customer_id)
){{without_rowid}};
INSERT INTO customer_tags_clustered (tag, customer_id) SELECT tag, customer_id FROM customer_tags ORDER BY tag, customer_id;
DROP TABLE customer_tags;
ALTER TABLE customer_tags_clustered RENAME TO customer_tags;
CREATE INDEX customer_tags_customer ON customer_tags(customer_id)
