-- Lifecycle categories (SPEC §4.4) and star levels (§4.5) kept with every grade result, and the
-- service-level overrides of star levels: manual (until removed) or until a fixed date.
ALTER TABLE grade_results ADD COLUMN lifecycle TEXT;
ALTER TABLE grade_results ADD COLUMN stars BIGINT;

CREATE TABLE star_overrides (
    customer_id BIGINT PRIMARY KEY,
    level BIGINT NOT NULL,
    -- YYYY-MM-DD: the override holds for runs of periods up to this date's; NULL until removed
    until_on TEXT,
    set_by BIGINT,
    set_at BIGINT NOT NULL
);
