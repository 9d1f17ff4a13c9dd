-- Search terms are deleted by part and term, found from the customer's search text
-- (domain::customers::search_text_terms), or for an import's undo by the parts its customers
-- fill: the second tree by customer cost as much to write as the terms themselves.
DROP INDEX customer_terms_customer;
