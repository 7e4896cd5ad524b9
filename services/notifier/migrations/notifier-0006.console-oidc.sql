-- depends: notifier-0005.console

-- A person signed in with OpenID Connect is found again by the provider's (issuer, subject),
-- never by a login a provider could claim; local accounts have neither.
ALTER TABLE console_people
    ADD COLUMN oidc_issuer   text,
    ADD COLUMN oidc_subject  text,
    ADD CONSTRAINT console_people_oidc_subject UNIQUE (oidc_issuer, oidc_subject);

-- Sign-ins under way at the provider: state, nonce and PKCE verifier, bound to the browser by a
-- cookie whose token is stored only as a digest; used once, kept minutes.
CREATE TABLE console_oidc_pending (
    token_digest   bytea       PRIMARY KEY,
    state          text        NOT NULL,
    nonce          text        NOT NULL,
    code_verifier  text        NOT NULL,
    redirect_uri   text        NOT NULL,
    expires_at     timestamptz NOT NULL
);
