-- depends: 0000.engine-01

CREATE TABLE stock (
    sku                  text    NOT NULL,
    warehouse            text    NOT NULL,
    on_hand              integer NOT NULL CHECK (on_hand >= 0),
    reserved             integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    -- NULL: the configured default threshold applies
    low_stock_threshold  integer CHECK (low_stock_threshold >= 0),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, warehouse)
);

-- One row per order line reserved; state moves held -> released | committed, each once.
CREATE TABLE reservations (
    order_id     text    NOT NULL,
    sku          text    NOT NULL,
    warehouse    text    NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    state        text    NOT NULL CHECK (state IN ('held', 'released', 'committed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, sku, warehouse)
);
CREATE INDEX reservations_sku ON reservations (sku, warehouse) WHERE state = 'held';
