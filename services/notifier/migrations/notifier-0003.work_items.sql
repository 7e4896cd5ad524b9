-- depends: notifier-0001.routing

-- Work items: one per routed group of anomalies in a team's queue, with its SLA clock.
CREATE TABLE work_items (
    id                  uuid        PRIMARY KEY,
    team                text        NOT NULL,
    group_key           text        NOT NULL,
    state               text        NOT NULL CHECK (state IN ('open', 'claimed', 'resolved', 'dismissed')),
    severity            text        NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4')),
    initial_severity    text        NOT NULL CHECK (initial_severity IN ('P1', 'P2', 'P3', 'P4')),
    priority            smallint    NOT NULL,
    tier                smallint    NOT NULL DEFAULT 1,
    title               text        NOT NULL,
    rules               text[]      NOT NULL,
    labels              jsonb       NOT NULL DEFAULT '{}',  -- of the anomaly that opened it
    anomaly_count       int         NOT NULL DEFAULT 1,
    open_anomalies      int         NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL,
    claim_due_at        timestamptz NOT NULL,
    resolve_due_at      timestamptz NOT NULL,
    due_at              timestamptz,              -- claim-by while open, resolve-by while claimed
    claimed_by          text,
    claimed_at          timestamptz,
    closed_at           timestamptz,
    closed_by           text,
    close_reason        text,
    cleared_at          timestamptz,
    reopened            int         NOT NULL DEFAULT 0,
    next_escalation_at  timestamptz,
    next_reminder_at    timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- The group's latest item (attach, reopen, or start anew).
CREATE INDEX work_items_group ON work_items (team, group_key, created_at DESC);
-- Queue views: a team's live items by priority then due time.
CREATE INDEX work_items_queue ON work_items (team, state, priority, due_at, id);
CREATE INDEX work_items_created ON work_items (created_at);
-- The open-items gauge counts live items only, from this small index.
CREATE INDEX work_items_live ON work_items (team, severity) WHERE state IN ('open', 'claimed');
-- The escalation and reminder jobs read only due rows.
CREATE INDEX work_items_escalation_due ON work_items (next_escalation_at)
    WHERE next_escalation_at IS NOT NULL;
CREATE INDEX work_items_reminder_due ON work_items (next_reminder_at)
    WHERE next_reminder_at IS NOT NULL;

-- The anomalies of an item; a fingerprint once per item, however often it is routed.
CREATE TABLE work_item_anomalies (
    work_item_id  uuid        NOT NULL REFERENCES work_items (id),
    fingerprint   text        NOT NULL,
    team          text        NOT NULL,
    rule          text        NOT NULL,
    severity      text        NOT NULL,
    summary       text        NOT NULL,
    labels        jsonb       NOT NULL DEFAULT '{}',
    event_time    timestamptz NOT NULL,  -- of the latest firing
    detected_at   timestamptz NOT NULL,  -- first firing: what analytics count by
    fired         int         NOT NULL DEFAULT 1,
    cleared_at    timestamptz,
    PRIMARY KEY (work_item_id, fingerprint)
);
CREATE INDEX work_item_anomalies_fingerprint ON work_item_anomalies (fingerprint);
CREATE INDEX work_item_anomalies_detected ON work_item_anomalies (detected_at);

-- Clearances seen (anomaly status resolved), so a clearance that overtakes its routed firing
-- (they travel different topics) still clears it when the firing lands.
CREATE TABLE anomaly_clearances (
    fingerprint  text        PRIMARY KEY,
    event_time   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE work_item_links (
    work_item_id  uuid NOT NULL REFERENCES work_items (id),
    kind          text NOT NULL,  -- order, shipment, case, product, customer
    ref           text NOT NULL,
    PRIMARY KEY (work_item_id, kind, ref)
);
CREATE INDEX work_item_links_ref ON work_item_links (kind, ref);

CREATE TABLE work_item_comments (
    id            uuid        PRIMARY KEY,
    work_item_id  uuid        NOT NULL REFERENCES work_items (id),
    author        text        NOT NULL,
    body          text        NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX work_item_comments_item ON work_item_comments (work_item_id, created_at);

CREATE TABLE work_item_timeline (
    id            bigserial   PRIMARY KEY,
    work_item_id  uuid        NOT NULL REFERENCES work_items (id),
    at            timestamptz NOT NULL,
    what          text        NOT NULL,
    actor         text        NOT NULL,
    details       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX work_item_timeline_item ON work_item_timeline (work_item_id, id);
