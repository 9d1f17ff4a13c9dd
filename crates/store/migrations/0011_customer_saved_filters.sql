-- 常用筛选: a person's saved filters of the customer list (a name and the list's query string)
CREATE TABLE customer_saved_filters (
    id {{id}},
    user_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    -- the list's query string, e.g. kind=lead&importance=urgent
    query TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX customer_saved_filters_name ON customer_saved_filters(user_id, name)
