-- depends: 0000.engine-01

-- One shipment per paid order (order_id UNIQUE). The status only moves forward (domain.PROGRESS).
CREATE TABLE shipments (
    shipment_id           text         PRIMARY KEY,
    order_id              text         NOT NULL UNIQUE,
    warehouse             text         NOT NULL,
    carrier               text         NOT NULL,
    tracking_number       text         NOT NULL,
    status                text         NOT NULL,
    promised_delivery_by  timestamptz  NOT NULL,
    customer_id           text         NOT NULL,
    phone                 text         NOT NULL,
    created_at            timestamptz  NOT NULL,
    dispatched_at         timestamptz,
    delivered_at          timestamptz,
    last_scan_at          timestamptz,
    last_exception        text,
    compensated_for       text,
    updated_at            timestamptz  NOT NULL DEFAULT now()
);
-- The delay-compensation job looks only at undelivered, uncompensated shipments.
CREATE INDEX shipments_owed ON shipments (promised_delivery_by)
    WHERE delivered_at IS NULL AND compensated_for IS NULL;

-- Every tracking number a shipment ever had, so a late scan on an old carrier still finds it.
CREATE TABLE shipment_tracking (
    carrier          text         NOT NULL,
    tracking_number  text         NOT NULL,
    shipment_id      text         NOT NULL REFERENCES shipments (shipment_id),
    assigned_at      timestamptz  NOT NULL,
    PRIMARY KEY (carrier, tracking_number)
);
CREATE INDEX shipment_tracking_shipment ON shipment_tracking (shipment_id, assigned_at);

-- Every scan applied, once per carrier and scan id, including late ones that moved nothing.
CREATE TABLE shipment_scans (
    carrier           text         NOT NULL,
    scan_id           text         NOT NULL,
    shipment_id       text         NOT NULL REFERENCES shipments (shipment_id),
    tracking_number   text         NOT NULL,
    status            text         NOT NULL,
    location          text,
    exception_reason  text,
    scanned_at        timestamptz  NOT NULL,
    status_changed    boolean      NOT NULL,
    received_at       timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (carrier, scan_id)
);
CREATE INDEX shipment_scans_shipment ON shipment_scans (shipment_id, scanned_at);

-- What else happened to a shipment: created, reassigned, compensated.
CREATE TABLE shipment_history (
    id           bigserial    PRIMARY KEY,
    shipment_id  text         NOT NULL REFERENCES shipments (shipment_id),
    at           timestamptz  NOT NULL,
    what         text         NOT NULL,
    details      jsonb        NOT NULL DEFAULT '{}'
);
CREATE INDEX shipment_history_shipment ON shipment_history (shipment_id, id);

-- Signed webhook requests accepted: a replayed signature or scan id is refused (409).
CREATE TABLE carrier_webhook_receipts (
    carrier      text         NOT NULL,
    scan_id      text         NOT NULL,
    signature    text         NOT NULL UNIQUE,
    received_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (carrier, scan_id)
);
