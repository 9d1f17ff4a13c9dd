-- Search terms kept in parts of 32,768 customer ids (domain::customers::TERM_PART_BITS = 15):
-- the terms of new customers land in the newest parts only, each a tree of a couple of million
-- terms that stays in the page cache, instead of touching every page of one large index (an
-- import of 100,000 customers beside 1,000,000 rewrote about 2 GB of index pages). A search looks
-- its term range up in each part. No foreign key: the rows are an index the customer code writes
-- and deletes with the customer, and the check cost a customer lookup per term.
CREATE TABLE customer_terms_parted (
    part BIGINT NOT NULL,
    term {{ordered_text}} NOT NULL,
    customer_id BIGINT NOT NULL,
    PRIMARY KEY (part, term, customer_id)
){{without_rowid}};
INSERT INTO customer_terms_parted (part, term, customer_id)
SELECT customer_id / 32768, term, customer_id FROM customer_terms ORDER BY customer_id / 32768, term, customer_id;
DROP TABLE customer_terms;
ALTER TABLE customer_terms_parted RENAME TO customer_terms;
CREATE INDEX customer_terms_customer ON customer_terms(customer_id);
