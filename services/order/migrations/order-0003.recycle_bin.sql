-- depends: order-0001.orders

-- The order recycle bin. An entry references an order and never changes the order itself
-- (row, lines, timeline) until it is purged. States and their legality: recycle_bin/domain.py.
CREATE TABLE recycle_bin_entries (
    entry_id       text          PRIMARY KEY,
    order_id       text          NOT NULL REFERENCES orders (order_id),
    state          text          NOT NULL CHECK (state IN ('in_bin', 'restored', 'archived', 'purged')),
    category       text          NOT NULL,
    reason         text          NOT NULL,
    case_id        text,
    moved_by       text          NOT NULL,
    moved_at       timestamptz   NOT NULL,
    last_cause_at  timestamptz   NOT NULL,
    -- The order's status when it went in: where a restore puts it back.
    order_status   text          NOT NULL,
    -- Non-personal facts of the order, copied for analytics that must survive a purge.
    channel        text          NOT NULL,
    amount         numeric(14,2) NOT NULL,
    closed_by      text,
    closed_reason  text,
    restored_at    timestamptz,
    archived_at    timestamptz,
    purged_at      timestamptz
);
-- At most one open entry per order: a second cause joins the open entry's history.
CREATE UNIQUE INDEX recycle_bin_one_open_entry ON recycle_bin_entries (order_id) WHERE state = 'in_bin';
CREATE INDEX recycle_bin_by_order ON recycle_bin_entries (order_id, moved_at DESC);
-- The listing's stable order (newest first) and keyset pagination; the stats' time range.
CREATE INDEX recycle_bin_by_moved ON recycle_bin_entries (moved_at DESC, entry_id DESC);
CREATE INDEX recycle_bin_by_category ON recycle_bin_entries (category, moved_at DESC);
CREATE INDEX recycle_bin_by_state ON recycle_bin_entries (state, moved_at DESC);
-- case.closed.v1 finds the open entries of its case.
CREATE INDEX recycle_bin_open_by_case ON recycle_bin_entries (case_id) WHERE state = 'in_bin';
-- The scheduled jobs' due rows: quiet entries without a case, archived entries past retention.
CREATE INDEX recycle_bin_quiet_due ON recycle_bin_entries (last_cause_at) WHERE state = 'in_bin' AND case_id IS NULL;
CREATE INDEX recycle_bin_purge_due ON recycle_bin_entries (archived_at) WHERE state = 'archived';

-- Every cause that put (or kept) an order in the bin: the entry's reason history. A cause from
-- an event (a refund, a case, an anomaly) is applied once per order, whatever id it arrives under.
CREATE TABLE recycle_bin_causes (
    id          bigserial    PRIMARY KEY,
    entry_id    text         NOT NULL REFERENCES recycle_bin_entries (entry_id),
    order_id    text         NOT NULL,
    cause_key   text         NOT NULL,
    category    text         NOT NULL,
    reason      text         NOT NULL,
    actor       text         NOT NULL,
    case_id     text,
    at          timestamptz  NOT NULL,
    event_type  text,
    event_id    text,
    UNIQUE (entry_id, cause_key)
);
CREATE INDEX recycle_bin_causes_by_order ON recycle_bin_causes (order_id, cause_key);

-- What a purge removed and when: the order keeps its non-personal facts, this says why the rest is gone.
CREATE TABLE order_purges (
    order_id       text          PRIMARY KEY REFERENCES orders (order_id),
    entry_id       text          NOT NULL REFERENCES recycle_bin_entries (entry_id),
    purged_at      timestamptz   NOT NULL,
    purged_fields  text[]        NOT NULL
);

-- Who the customer is, for filtering the bin (member levels may come later); NULL reads as regular.
ALTER TABLE orders ADD COLUMN customer_type text DEFAULT 'regular';
-- Counts by product.
CREATE INDEX order_lines_by_sku ON order_lines (sku, order_id);
