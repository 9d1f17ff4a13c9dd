-- The platform: org tree, people, roles, tokens, audit log.
-- {{id}}, {{path}} and {{blob}} are replaced per backend (see migrate.rs); everything else is portable.

CREATE TABLE orgs (
    id {{id}},
    parent_id BIGINT REFERENCES orgs(id),
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    kind TEXT NOT NULL,
    path {{path}} NOT NULL,
    depth BIGINT NOT NULL,
    -- the zone set on this node (NULL: inherited) and the one in force, kept in step down the tree
    timezone_own TEXT,
    timezone TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX orgs_code ON orgs(code);
CREATE UNIQUE INDEX orgs_path ON orgs(path);
CREATE INDEX orgs_parent ON orgs(parent_id);

CREATE TABLE roles (
    id {{id}},
    name TEXT NOT NULL,
    -- JSON array of permission codes
    permissions TEXT NOT NULL,
    data_level TEXT NOT NULL,
    builtin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles(name);

CREATE TABLE users (
    id {{id}},
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    employee_no TEXT,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    position TEXT,
    phone TEXT,
    email TEXT,
    manager_id BIGINT REFERENCES users(id),
    enabled BIGINT NOT NULL DEFAULT 1,
    locale TEXT NOT NULL DEFAULT 'zh-CN',
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    last_login_at BIGINT,
    photo {{blob}},
    photo_type TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users(username);
CREATE UNIQUE INDEX users_employee_no ON users(employee_no);
CREATE INDEX users_org ON users(org_id, id);
CREATE INDEX users_manager ON users(manager_id);

CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users(id),
    role_id BIGINT NOT NULL REFERENCES roles(id),
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    PRIMARY KEY (user_id, role_id, org_id)
);
CREATE INDEX user_roles_role ON user_roles(role_id);

CREATE TABLE tokens (
    id {{id}},
    user_id BIGINT NOT NULL REFERENCES users(id),
    -- session (a browser's cookie or a login through the API) or personal (made by the user)
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX tokens_digest ON tokens(digest);
CREATE INDEX tokens_user ON tokens(user_id, id);

CREATE TABLE audit_log (
    id {{id}},
    at BIGINT NOT NULL,
    user_id BIGINT,
    username TEXT NOT NULL,
    -- the org the changed object belongs to, so the log obeys scope like everything else
    org_path {{path}} NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id BIGINT,
    summary TEXT NOT NULL,
    -- JSON object: field -> [before, after]
    changes TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_org ON audit_log(org_path, id);
