-- 附件: files kept with a customer (contracts, business licences, photos), in the database so
-- that backups hold them too.
CREATE TABLE customer_attachments (
    id {{id}},
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    data {{blob}} NOT NULL,
    uploaded_by BIGINT REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX customer_attachments_customer ON customer_attachments(customer_id, id);
