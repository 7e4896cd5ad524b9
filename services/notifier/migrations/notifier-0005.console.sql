-- depends: notifier-0003.work_items

-- The console's people: local accounts (an Argon2id hash) or OpenID Connect subjects.
CREATE TABLE console_people (
    id                    uuid        PRIMARY KEY,
    login                 text        NOT NULL UNIQUE,
    display_name          text        NOT NULL,
    password_hash         text,
    is_admin              boolean     NOT NULL DEFAULT false,
    must_change_password  boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    disabled_at           timestamptz
);

-- A person's teams (the routing file's teams) and their role in each.
CREATE TABLE console_memberships (
    person_id  uuid NOT NULL REFERENCES console_people (id) ON DELETE CASCADE,
    team       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('operator', 'lead')),
    PRIMARY KEY (person_id, team)
);

-- Signed-in sessions: only a digest of the cookie's token is kept; the CSRF token is per session.
CREATE TABLE console_sessions (
    token_digest   bytea       PRIMARY KEY,
    person_id      uuid        NOT NULL REFERENCES console_people (id) ON DELETE CASCADE,
    csrf_token     text        NOT NULL,
    created_at     timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX console_sessions_person ON console_sessions (person_id);
