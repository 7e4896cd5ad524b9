-- depends: inventory-0001.stock

-- Every stock movement, append-only. The stock row is the running balance: for each SKU and
-- warehouse, stock.on_hand = sum(on_hand_delta) and stock.reserved = sum(reserved_delta).
CREATE TABLE stock_ledger (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku             text        NOT NULL,
    warehouse       text        NOT NULL,
    movement        text        NOT NULL CHECK (movement IN (
                        'opening', 'stock_set', 'received', 'reserved', 'released',
                        'committed', 'adjusted')),
    on_hand_delta   integer     NOT NULL,
    reserved_delta  integer     NOT NULL,
    on_hand_after   integer     NOT NULL,
    reserved_after  integer     NOT NULL,
    order_id        text,
    reference       text,       -- receipt, count or shipment id
    actor           text,       -- who: a caller, a clerk, or the event that caused it
    note            text,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_ledger_by_stock ON stock_ledger (sku, warehouse, id);

-- Stock recorded before the ledger existed opens it, so the sums hold from the start.
INSERT INTO stock_ledger (sku, warehouse, movement, on_hand_delta, reserved_delta,
                          on_hand_after, reserved_after, actor, note)
SELECT sku, warehouse, 'opening', on_hand, reserved, on_hand, reserved,
       'migration', 'balance before the ledger existed'
FROM stock;

-- 'failed': the order could not be reserved; kept so the same order placed again (a
-- producer's duplicate under a new event id) is not tried twice.
ALTER TABLE reservations DROP CONSTRAINT reservations_state_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_state_check
    CHECK (state IN ('held', 'released', 'committed', 'failed'));
