-- Customer records (客户档案): customers, contacts, follow-up records, sharing, the search index,
-- phones for duplicates and caller-ID, custom fields, the timeline, imports and the call log.

CREATE TABLE customers (
    id {{id}},
    -- scope: the org the customer belongs to, and its owner rep (NULL: in the public pool)
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    owner_id BIGINT REFERENCES users(id),
    -- customer, lead, agent or competitor
    kind TEXT NOT NULL,
    is_company BIGINT NOT NULL DEFAULT 1,
    name TEXT NOT NULL,
    company TEXT,
    code TEXT,
    phone TEXT,
    email TEXT,
    address TEXT,
    region TEXT,
    industry TEXT,
    source TEXT,
    customer_group TEXT,
    -- JSON array of strings; customer_tags holds them for filtering
    tags TEXT NOT NULL DEFAULT '[]',
    importance TEXT,
    intent TEXT,
    -- YYYY-MM-DD: the end of the intent's expected-close window
    expected_close_by TEXT,
    hobbies TEXT,
    birthday TEXT,
    -- MM-DD, for the birthday reminders of the coming days
    birthday_md TEXT,
    birthday_reminder BIGINT NOT NULL DEFAULT 1,
    notes TEXT,
    blacklisted BIGINT NOT NULL DEFAULT 0,
    blacklist_reason TEXT,
    -- JSON object: custom field code -> value
    custom TEXT NOT NULL DEFAULT '{}',
    -- normalised name|company, for the same-name-and-company duplicate rule
    name_company_key TEXT NOT NULL,
    -- every search key, for queries longer than an index term
    search_text TEXT NOT NULL,
    -- the pool clock: the last follow-up, claim or assignment
    last_touched_at BIGINT NOT NULL,
    last_follow_up_at BIGINT,
    -- YYYY-MM-DD of the next follow-up the latest record planned
    next_follow_up_on TEXT,
    pool_since BIGINT,
    import_id BIGINT,
    created_by BIGINT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX customers_org ON customers(org_id, id);
CREATE INDEX customers_owner ON customers(owner_id, id);
CREATE INDEX customers_name_company_key ON customers(name_company_key);
CREATE INDEX customers_touched ON customers(org_id, last_touched_at);
CREATE INDEX customers_next_follow_up ON customers(next_follow_up_on);
CREATE INDEX customers_birthday ON customers(birthday_md);
CREATE INDEX customers_import ON customers(import_id);
CREATE INDEX customers_name ON customers(name, id);
CREATE INDEX customers_updated ON customers(updated_at, id);

-- the search index: every suffix of every key, so "any part of" is one index range
CREATE TABLE customer_terms (
    term {{ordered_text}} NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    PRIMARY KEY (term, customer_id)
);
CREATE INDEX customer_terms_customer ON customer_terms(customer_id);

-- every phone of a customer and its contacts, by national digits
CREATE TABLE customer_phones (
    digits TEXT NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    PRIMARY KEY (digits, customer_id)
);
CREATE INDEX customer_phones_customer ON customer_phones(customer_id);

CREATE TABLE customer_tags (
    tag TEXT NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    PRIMARY KEY (tag, customer_id)
);
CREATE INDEX customer_tags_customer ON customer_tags(customer_id);

CREATE TABLE contacts (
    id {{id}},
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    name TEXT NOT NULL,
    department TEXT,
    title TEXT,
    gender TEXT,
    approx_age BIGINT,
    phone TEXT,
    mobile TEXT,
    email TEXT,
    birthday TEXT,
    -- JSON array of {"label","date"}
    important_dates TEXT NOT NULL DEFAULT '[]',
    notes TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX contacts_customer ON contacts(customer_id, id);

-- 沟通记录
CREATE TABLE activities (
    id {{id}},
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    contact_id BIGINT REFERENCES contacts(id),
    user_id BIGINT REFERENCES users(id),
    -- call, visit, email, meeting or note
    kind TEXT NOT NULL,
    content TEXT NOT NULL,
    happened_at BIGINT NOT NULL,
    next_follow_up_on TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX activities_customer ON activities(customer_id, happened_at);

CREATE TABLE customer_shares (
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    can_edit BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, user_id)
);
CREATE INDEX customer_shares_user ON customer_shares(user_id, customer_id);

-- the timeline's changes: edits, owner moves, pool moves, merges, conversions, calls
CREATE TABLE customer_events (
    id {{id}},
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    at BIGINT NOT NULL,
    user_id BIGINT,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- JSON object: field -> [before, after]
    changes TEXT
);
CREATE INDEX customer_events_customer ON customer_events(customer_id, id);

-- custom fields, defined at an org for its whole subtree
CREATE TABLE customer_fields (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    code TEXT NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- JSON array of strings
    choices TEXT NOT NULL DEFAULT '[]',
    required BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX customer_fields_code ON customer_fields(org_id, code);

CREATE TABLE customer_imports (
    id {{id}},
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    file_name TEXT NOT NULL,
    rows_total BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    undone_at BIGINT
);

-- what an import's "update" rows held before, so that undo can put it back
CREATE TABLE customer_import_updates (
    import_id BIGINT NOT NULL REFERENCES customer_imports(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    -- JSON of the customer's columns before the import
    before TEXT NOT NULL,
    PRIMARY KEY (import_id, customer_id)
);

-- 来电: the call log
CREATE TABLE calls (
    id {{id}},
    customer_id BIGINT REFERENCES customers(id),
    agent_id BIGINT REFERENCES users(id),
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    phone TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX calls_customer ON calls(customer_id, id);
CREATE INDEX calls_agent ON calls(agent_id, id)
