-- depends: order-0001.orders

-- The lifecycle beyond placement: payment, holds (with the status a release returns to),
-- shipment, delivery, and the priority operators' queues sort by.
ALTER TABLE orders
    ADD COLUMN member_level          text          NOT NULL DEFAULT 'regular',
    ADD COLUMN express               boolean       NOT NULL DEFAULT false,
    ADD COLUMN priority_score        integer       NOT NULL DEFAULT 0,
    ADD COLUMN priority_level        text          NOT NULL DEFAULT 'P4',
    ADD COLUMN payment_due_at        timestamptz,
    ADD COLUMN payment_id            text,
    ADD COLUMN paid_amount           numeric(14,2),
    ADD COLUMN promised_delivery_by  timestamptz,
    ADD COLUMN delivered_at          timestamptz,
    ADD COLUMN held_from             text,
    ADD COLUMN hold_reason           text,
    ADD COLUMN hold_note             text,
    ADD COLUMN hold_release_at       timestamptz;

-- What the scheduled jobs look for: unpaid past the deadline, holds due for release,
-- deliveries old enough to complete.
CREATE INDEX orders_payment_due ON orders (payment_due_at)
    WHERE status IN ('placed', 'payment_failed');
CREATE INDEX orders_hold_release ON orders (hold_release_at)
    WHERE status = 'on_hold' AND hold_release_at IS NOT NULL;
CREATE INDEX orders_delivered ON orders (delivered_at) WHERE status = 'delivered';
-- The operators' queue: by status (and hold reason), highest priority first, oldest first.
CREATE INDEX orders_queue ON orders (status, priority_score DESC, placed_at);

-- Each payment fact once per order, whatever id it arrives under (a payment service may
-- resend the same outcome as a new event).
CREATE TABLE order_payments (
    payment_id   text         NOT NULL,
    outcome      text         NOT NULL,
    order_id     text         NOT NULL REFERENCES orders (order_id),
    recorded_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, payment_id, outcome)
);
