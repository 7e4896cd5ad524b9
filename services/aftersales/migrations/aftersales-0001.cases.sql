-- depends: 0000.engine-01

-- What aftersales knows of each order, from orders.events (placed, paid); lines summed per SKU
-- with their share of the paid amount.
CREATE TABLE known_orders (
    order_id      text PRIMARY KEY,
    customer_id   text NOT NULL,
    channel       text NOT NULL,
    phone         text,
    total_amount  numeric(14, 2) NOT NULL,
    placed_at     timestamptz,
    paid_at       timestamptz,
    paid_amount   numeric(14, 2),
    payment_id    text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE known_order_lines (
    order_id    text NOT NULL REFERENCES known_orders (order_id),
    sku         text NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    amount      numeric(14, 2) NOT NULL CHECK (amount >= 0),
    paid        numeric(14, 2) NOT NULL CHECK (paid >= 0),
    PRIMARY KEY (order_id, sku)
);

-- From logistics.events: may arrive before the order itself, so it stands alone.
CREATE TABLE order_deliveries (
    order_id      text PRIMARY KEY,
    shipment_id   text NOT NULL,
    delivered_at  timestamptz NOT NULL
);

CREATE TABLE cases (
    case_id                 text PRIMARY KEY,
    order_id                text NOT NULL,
    customer_id             text NOT NULL,
    channel                 text,
    case_type               text NOT NULL
        CHECK (case_type IN ('return', 'exchange', 'refund', 'repair', 'complaint')),
    state                   text NOT NULL,
    priority                text NOT NULL CHECK (priority IN ('P1', 'P2', 'P3', 'P4')),
    reason                  text NOT NULL,
    lines                   jsonb NOT NULL,
    needs_review            boolean NOT NULL DEFAULT false,
    policy                  jsonb NOT NULL DEFAULT '{}',
    opened_at               timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    first_response_due_at   timestamptz,
    first_response_at       timestamptz,
    closed_at               timestamptz,
    resolution              text,
    satisfaction            smallint CHECK (satisfaction BETWEEN 1 AND 5),
    version                 integer NOT NULL DEFAULT 1
);
CREATE INDEX cases_order ON cases (order_id);
CREATE INDEX cases_state ON cases (state, case_type);

CREATE TABLE case_timeline (
    id          bigserial PRIMARY KEY,
    case_id     text NOT NULL REFERENCES cases (case_id),
    at          timestamptz NOT NULL,
    what        text NOT NULL,
    actor_kind  text NOT NULL,
    actor_id    text NOT NULL,
    note        text,
    from_state  text,
    to_state    text,
    event_type  text,
    event_id    text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_timeline_case ON case_timeline (case_id, at, id);

CREATE TABLE case_attachments (
    attachment_id  text PRIMARY KEY,
    case_id        text NOT NULL REFERENCES cases (case_id),
    filename       text NOT NULL,
    content_type   text NOT NULL,
    size_bytes     bigint NOT NULL CHECK (size_bytes >= 0),
    sha256         text NOT NULL,
    storage        text NOT NULL CHECK (storage IN ('local', 'url')),
    reference      text NOT NULL,
    uploaded_by    text NOT NULL,
    uploaded_at    timestamptz NOT NULL
);
CREATE INDEX case_attachments_case ON case_attachments (case_id);

CREATE TABLE refunds (
    refund_id    text PRIMARY KEY,
    case_id      text NOT NULL REFERENCES cases (case_id),
    order_id     text NOT NULL,
    customer_id  text NOT NULL,
    amount       numeric(14, 2) NOT NULL CHECK (amount >= 0),
    reason       text NOT NULL,
    issued_by    text NOT NULL,
    issued_at    timestamptz NOT NULL
);

-- Exactly once per case, order line and action, whatever the callers retry.
CREATE TABLE refund_lines (
    refund_id  text NOT NULL REFERENCES refunds (refund_id),
    case_id    text NOT NULL,
    order_id   text NOT NULL,
    sku        text NOT NULL,
    action     text NOT NULL CHECK (action IN ('return', 'partial', 'compensation')),
    quantity   integer NOT NULL CHECK (quantity > 0),
    amount     numeric(14, 2) NOT NULL CHECK (amount >= 0),
    CONSTRAINT refund_lines_once UNIQUE (case_id, sku, action)
);
CREATE INDEX refund_lines_order ON refund_lines (order_id, sku);
