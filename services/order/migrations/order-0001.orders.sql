-- depends: 0000.engine-01

-- The status column holds the domain's OrderStatus; legality of changes lives in domain.TRANSITIONS.
CREATE TABLE orders (
    order_id          text          PRIMARY KEY,
    customer_id       text          NOT NULL,
    channel           text          NOT NULL,
    warehouse         text          NOT NULL,
    status            text          NOT NULL,
    phone             text          NOT NULL,
    shipping_address  jsonb         NOT NULL,
    total_amount      numeric(14,2) NOT NULL CHECK (total_amount >= 0),
    placed_at         timestamptz   NOT NULL,
    updated_at        timestamptz   NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, placed_at DESC);

CREATE TABLE order_lines (
    order_id    text          NOT NULL REFERENCES orders (order_id),
    line_no     integer       NOT NULL,
    sku         text          NOT NULL,
    quantity    integer       NOT NULL CHECK (quantity > 0),
    unit_price  numeric(12,2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- Everything that happened to an order. An event is recorded once per order, however often it arrives.
CREATE TABLE order_timeline (
    id           bigserial    PRIMARY KEY,
    order_id     text         NOT NULL REFERENCES orders (order_id),
    at           timestamptz  NOT NULL,
    what         text         NOT NULL,
    actor_kind   text         NOT NULL,
    actor_id     text         NOT NULL,
    reason       text,
    from_status  text,
    to_status    text,
    event_type   text,
    event_id     text,
    details      jsonb        NOT NULL DEFAULT '{}',
    recorded_at  timestamptz  NOT NULL DEFAULT now(),
    UNIQUE (order_id, event_id)
);
