"""What the scenario's shop does and when, and which anomalies it injects. Pure: no I/O.

A plan is a set of *stories* — small sequential scripts (an order's life: placed, paid, its
parcel scanned to the door, sometimes a return, a refund or a complaint; a restock; a stock
count) whose steps carry a time in simulated seconds from the start. Stories refer to what the
services will name only when the plan is played (an order's id, a case's id) by *refs*
(`o12`, `k3`); identity labels that name them are written `@o12` and resolved by the player.

Clean traffic is shaped so that no detector has reason to fire on it: stock is received before
it gets near a threshold, every parcel is scanned well within the stall silence and delivered
well before its promise, every case gets a staff response within its first-response SLA, a
customer never orders the same lines to the same address twice, gets at most one refund, and
payment failures are sparse. Each injected anomaly breaks exactly one of those on purpose and
is described by a `PlannedAnomaly` (its rule and the identity labels the anomaly will carry).

Same seed and config, same plan.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from orderguard.scenario.scale import HOUR, Windows

MINUTE = 60.0

# kind -> the rule that must raise it. A bad address is not an anomaly rule: the order service
# holds the order at intake (`order.held.v1`, reason address_incomplete, on orders.events).
KINDS: dict[str, str] = {
    "low_stock": "stock.low",
    "stalled_tracking": "shipment.stalled",
    "overdue_delivery": "shipment.overdue",
    "carrier_exception": "shipment.exception",
    "repeated_refunds": "refund.repeated",
    "payment_failure_burst": "payment.failures",
    "duplicate_order": "order.duplicate",
    "bad_address": "order.held",
    "sla_breach": "case.sla_breached",
    "inventory_inconsistency": "inventory.inconsistent",
}

# -- actions: what a step does --------------------------------------------------------------


@dataclass(frozen=True)
class SetStock:
    sku: str
    warehouse: str
    on_hand: int
    threshold: int


@dataclass(frozen=True)
class ReceiveStock:
    sku: str
    warehouse: str
    quantity: int
    reference: str


@dataclass(frozen=True)
class CountStock:
    sku: str
    warehouse: str
    counted_on_hand: int
    counted_by: str


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Address:
    province: str
    city: str
    district: str
    street: str
    recipient: str


@dataclass(frozen=True)
class PlaceOrder:
    ref: str
    customer_id: str
    phone: str
    address: Address
    lines: tuple[Line, ...]
    channel: str
    warehouse: str
    member_level: str
    express: bool

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class Pay:
    """A payment outcome as the payment service publishes it on `payments.events`.

    A failure carries its event time (`occurred_at`) from the plan, so failure bursts are what
    the plan says whatever the player's lag; a success is stamped when it is sent (the delivery
    promise runs from it)."""

    ref: str
    payment_id: str
    amount: Decimal
    provider: str
    failure_code: str | None = None


@dataclass(frozen=True)
class Scan:
    """A carrier scan of the order's parcel (the player finds its tracking number)."""

    ref: str
    status: str  # picked_up, in_transit, out_for_delivery, delivered, exception
    location: str
    exception_reason: str | None = None


@dataclass(frozen=True)
class OpenCase:
    case_ref: str
    order_ref: str
    case_type: str
    lines: tuple[tuple[str, int], ...]
    reason: str | None
    priority: str = "P3"


@dataclass(frozen=True)
class CaseAction:
    case_ref: str
    action: str
    satisfaction: int | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class Comment:
    case_ref: str
    note: str


@dataclass(frozen=True)
class Refund:
    case_ref: str
    lines: tuple[tuple[str, int, Decimal], ...]
    reason: str


Action = (
    SetStock
    | ReceiveStock
    | CountStock
    | PlaceOrder
    | Pay
    | Scan
    | OpenCase
    | CaseAction
    | Comment
    | Refund
)


@dataclass(frozen=True)
class Step:
    at: float  # simulated seconds from the start
    action: Action
    # the planned anomaly this step injects, or one of the steps that together inject it (the
    # refunds of a customer, the failures of a burst, an order and its twin)
    label: str | None = None
    # played at least this long (simulated) after the story's previous step started, however
    # late the player is: an injected silence stays a silence
    min_gap_s: float = 0.0


@dataclass(frozen=True)
class Story:
    name: str
    steps: tuple[Step, ...]

    @property
    def start(self) -> float:
        return self.steps[0].at


@dataclass(frozen=True)
class PlannedAnomaly:
    id: str
    kind: str
    rule: str
    match: dict[str, str]  # identity labels the anomaly will carry; "@ref" resolved when played
    fires_after_s: float  # simulated seconds after its injecting step
    note: str


@dataclass(frozen=True)
class Plan:
    seed: int
    tag: str
    setup: tuple[Action, ...]
    stories: tuple[Story, ...]
    anomalies: tuple[PlannedAnomaly, ...]

    @property
    def steps(self) -> int:
        return len(self.setup) + sum(len(story.steps) for story in self.stories)

    @property
    def end_s(self) -> float:
        return max((story.steps[-1].at for story in self.stories), default=0.0)

    @property
    def orders(self) -> int:
        return sum(
            isinstance(step.action, PlaceOrder) for story in self.stories for step in story.steps
        )

    def actions(self) -> Iterator[Action]:
        yield from self.setup
        for story in self.stories:
            for step in story.steps:
                yield step.action


# -- the shop --------------------------------------------------------------------------------

CATALOGUE = (
    ("MUG-RED-350", "39.90"),
    ("MUG-BLUE-350", "39.90"),
    ("TEA-LONGJING-250", "128.00"),
    ("TEA-PUER-357", "268.00"),
    ("KETTLE-1L", "199.00"),
    ("CUP-GLASS-6", "59.90"),
    ("TRAY-BAMBOO", "45.00"),
    ("HONEY-500", "68.00"),
    ("SPOON-SET", "29.90"),
    ("NAPKIN-40", "12.50"),
    ("TEAPOT-CLAY", "388.00"),
    ("COASTER-4", "19.90"),
)
QUIET_SKUS = 3  # slow movers, counted now and then
WAREHOUSES = ("main", "east")
EAST = frozenset({"Shanghai", "Jiangsu", "Zhejiang", "Anhui"})
PLACES = (
    ("Zhejiang", "Hangzhou", "Xihu", "1 Wensan Rd"),
    ("Shanghai", "Shanghai", "Pudong", "88 Century Ave"),
    ("Jiangsu", "Nanjing", "Gulou", "18 Zhongshan Rd"),
    ("Guangdong", "Shenzhen", "Nanshan", "9 Keyuan Rd"),
    ("Beijing", "Beijing", "Haidian", "5 Zhongguancun St"),
    ("Sichuan", "Chengdu", "Wuhou", "32 Renmin South Rd"),
    ("Hubei", "Wuhan", "Wuchang", "7 Zhongnan Rd"),
    ("Anhui", "Hefei", "Shushan", "66 Changjiang West Rd"),
)
SURNAMES = ("Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu")
GIVEN = ("Lei", "Fang", "Wei", "Min", "Jing", "Tao", "Yan", "Hui", "Qiang", "Na")
LEVELS = (("regular", 60), ("silver", 25), ("gold", 10), ("platinum", 5))
CHANNELS = (("web", 35), ("app", 35), ("mini_program", 20), ("marketplace", 10))
PROVIDERS = ("alipay", "wechat_pay", "unionpay")
FAILURE_CODES = ("insufficient_funds", "card_declined", "risk_rejected", "timeout")
EXCEPTION_REASONS = ("damaged", "address_problem", "lost", "refused")
BAD_ADDRESSES = (
    ("street", "3号"),  # too short for a courier
    ("district", ""),  # no district
    ("province", "Atlantis"),  # not a mainland province
)

THRESHOLD = 20  # every catalogue SKU's own low-stock threshold
INITIAL_STOCK = 400
RESTOCK = 300
STOCK_BUFFER = 60  # received before available would come this close to the threshold
CLEARANCE_THRESHOLD = 10  # injected low stock: a clearance SKU sold below its threshold


@dataclass(frozen=True)
class Customer:
    customer_id: str
    phone: str
    address: Address
    member_level: str
    channel: str

    @property
    def warehouse(self) -> str:
        return "east" if self.address.province in EAST else "main"


@dataclass(frozen=True)
class ShopConfig:
    orders: int = 60  # clean orders
    order_interval_s: float = 20 * MINUTE  # mean simulated time between clean orders
    injections_per_kind: int = 1
    kinds: tuple[str, ...] = tuple(KINDS)
    tag: str = "s1"  # in every customer id and SKU, so runs on one system never mix
    return_rate: float = 0.05
    refund_rate: float = 0.02
    complaint_rate: float = 0.03
    payment_failure_rate: float = 0.04
    express_rate: float = 0.15

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown anomaly kinds: {sorted(unknown)}; known: {list(KINDS)}")


def plan_scenario(seed: int, windows: Windows, config: ShopConfig | None = None) -> Plan:
    """The plan for `seed`: `config.orders` clean orders and `injections_per_kind` of each kind."""
    return _Planner(seed, windows, config or ShopConfig()).plan()


@dataclass
class _Planner:
    seed: int
    windows: Windows
    config: ShopConfig
    rng: random.Random = field(init=False)
    stories: list[Story] = field(default_factory=list)
    anomalies: list[PlannedAnomaly] = field(default_factory=list)
    setup: list[Action] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    signatures: set[tuple[str, tuple[tuple[str, int], ...]]] = field(default_factory=set)
    refunded: set[str] = field(default_factory=set)
    reserved_customers: set[str] = field(default_factory=set)
    failures: list[float] = field(default_factory=list)  # clean ones
    burst_failures: list[float] = field(default_factory=list)  # each burst's first and last
    available: dict[tuple[str, str], int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        promise = self.windows.delivery_promise_s
        if self.windows.stall_silence_s * 1.5 + 20 * HOUR > 0.85 * promise:
            raise ValueError("the stall silence is too long for the delivery promise")

    # ids

    def next_id(self, prefix: str) -> str:
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}{self.counters[prefix]}"

    def sku(self, name: str) -> str:
        return f"{name}-{self.config.tag}"

    # the shop

    def plan(self) -> Plan:
        cfg = self.config
        span = max(cfg.orders, 1) * cfg.order_interval_s
        self.customers = [self.make_customer(i) for i in range(max(20, cfg.orders // 2 + 10))]
        for name, _ in CATALOGUE:
            for warehouse in WAREHOUSES:
                self.setup.append(SetStock(self.sku(name), warehouse, INITIAL_STOCK, THRESHOLD))
                self.available[(self.sku(name), warehouse)] = INITIAL_STOCK
        quiet = [self.sku(f"SPARE{i + 1}") for i in range(QUIET_SKUS)]
        for sku in quiet:
            self.setup.append(SetStock(sku, "main", 60, 5))
        # Injections first: their times are fixed, clean traffic keeps away from their bursts.
        injections = [(kind, n) for kind in cfg.kinds for n in range(cfg.injections_per_kind)]
        self.rng.shuffle(injections)
        slots = sorted(self.rng.uniform(0.05 * span, 0.8 * span) for _ in injections)
        # Bursts evenly spaced, each alone in its window (two in one would count together);
        # as many as fit in the run.
        window = self.windows.payment_window_s
        fit = max(1, int(0.75 * span / (1.5 * window)))
        bursts = [i for i, (kind, _) in enumerate(injections) if kind == "payment_failure_burst"]
        for i in reversed(bursts[fit:]):
            del injections[i], slots[i]
        bursts = bursts[:fit]
        gap = 0.75 * span / max(len(bursts), 1)
        for n, i in enumerate(bursts):
            slots[i] = 0.05 * span + n * gap + gap / 2
        # Every burst's failures are known before any injection plans a payment: an injected
        # order's clean failure planned before a later burst must keep away from it too.
        burst_span = self.windows.payment_burst_span_s
        self.burst_failures = [t for i in bursts for t in (slots[i], slots[i] + burst_span)]
        for at, (kind, n) in zip(slots, injections, strict=True):
            getattr(self, f"inject_{kind}")(at, n)
        # Clean traffic.
        at = 0.0
        for _ in range(cfg.orders):
            at += self.rng.expovariate(1 / cfg.order_interval_s)
            self.clean_order(at)
        for n, count_at in enumerate(range(int(6 * HOUR), int(span), int(8 * HOUR))):
            sku = quiet[n % len(quiet)]
            self.stories.append(
                Story(f"count {sku}", (Step(count_at, CountStock(sku, "main", 60, "clerk-7")),))
            )
        stories = sorted(self.stories, key=lambda story: (story.start, story.name))
        return Plan(self.seed, cfg.tag, tuple(self.setup), tuple(stories), tuple(self.anomalies))

    def make_customer(self, i: int) -> Customer:
        province, city, district, street = self.rng.choice(PLACES)
        name = f"{self.rng.choice(SURNAMES)} {self.rng.choice(GIVEN)}"
        phone = self.rng.choice(("138", "139", "150", "186", "177")) + "".join(
            self.rng.choice("0123456789") for _ in range(8)
        )
        return Customer(
            customer_id=f"c-{self.config.tag}-{i + 1}",
            phone=phone,
            address=Address(province, city, district, street, name),
            member_level=_weighted(self.rng, LEVELS),
            channel=_weighted(self.rng, CHANNELS),
        )

    def customer(self, exclude: set[str] | None = None) -> Customer:
        taken = self.reserved_customers | (exclude or set())
        for _ in range(100):
            customer = self.rng.choice(self.customers)
            if customer.customer_id not in taken:
                return customer
        customer = self.make_customer(len(self.customers))
        self.customers.append(customer)
        return customer

    def fresh_customer(self) -> Customer:
        """A customer nobody else uses (for injections that count per customer)."""
        customer = self.make_customer(len(self.customers))
        self.customers.append(customer)
        self.reserved_customers.add(customer.customer_id)
        return customer

    def lines_for(self, customer: Customer) -> tuple[Line, ...]:
        """Lines this customer has never ordered before (so clean orders are never duplicates)."""
        for _ in range(50):
            count = self.rng.choice((1, 1, 1, 2, 2, 3))
            picked = self.rng.sample(CATALOGUE, count)
            lines = tuple(
                Line(self.sku(name), self.rng.choice((1, 1, 1, 2, 3)), Decimal(price))
                for name, price in sorted(picked)
            )
            signature = (customer.customer_id, tuple((line.sku, line.quantity) for line in lines))
            if signature not in self.signatures:
                self.signatures.add(signature)
                return lines
        raise RuntimeError(f"no new lines left for {customer.customer_id}")

    def order(
        self,
        at: float,
        customer: Customer,
        lines: tuple[Line, ...] | None = None,
        channel: str | None = None,
        address: Address | None = None,
        warehouse: str | None = None,
    ) -> PlaceOrder:
        lines = lines or self.lines_for(customer)
        warehouse = warehouse or customer.warehouse
        for line in lines:
            key = (line.sku, warehouse)
            if key in self.available:
                if self.available[key] - line.quantity < THRESHOLD + STOCK_BUFFER:
                    reference = self.next_id("PO-")
                    self.stories.append(
                        Story(
                            f"restock {line.sku}@{warehouse}",
                            (
                                Step(
                                    max(0.0, at - MINUTE),
                                    ReceiveStock(line.sku, warehouse, RESTOCK, reference),
                                ),
                            ),
                        )
                    )
                    self.available[key] += RESTOCK
                self.available[key] -= line.quantity
        return PlaceOrder(
            ref=self.next_id("o"),
            customer_id=customer.customer_id,
            phone=customer.phone,
            address=address or customer.address,
            lines=lines,
            channel=channel or customer.channel,
            warehouse=warehouse,
            member_level=customer.member_level,
            express=self.rng.random() < self.config.express_rate,
        )

    def payment(self, order: PlaceOrder, failure_code: str | None = None) -> Pay:
        return Pay(
            order.ref,
            self.next_id(f"pay-{self.config.tag}-"),
            order.total,
            self.rng.choice(PROVIDERS),
            failure_code,
        )

    def failure_allowed(self, at: float) -> bool:
        """A clean failure only far from the bursts, and at most two in any window: bursts are
        the plan's alone."""
        window = self.windows.payment_window_s
        if any(abs(at - other) <= 2 * window for other in self.burst_failures):
            return False
        return sum(abs(at - other) <= window for other in self.failures) <= 1

    # an order's life

    def paid_steps(self, order: PlaceOrder, at: float, allow_failure: bool = True) -> list[Step]:
        steps: list[Step] = []
        pay_at = at + self.rng.uniform(1, 10) * MINUTE
        if (
            allow_failure
            and self.rng.random() < self.config.payment_failure_rate
            and self.failure_allowed(pay_at)
        ):
            self.failures.append(pay_at)
            steps.append(Step(pay_at, self.payment(order, self.rng.choice(FAILURE_CODES))))
            pay_at += self.rng.uniform(3, 15) * MINUTE
        steps.append(Step(pay_at, self.payment(order)))
        return steps

    def journey(
        self, order: PlaceOrder, paid_at: float, variant: str = "clean", label: str | None = None
    ) -> tuple[list[Step], float]:
        """The parcel's scans from payment to the door; the time it is delivered."""
        rng = self.rng
        stall = self.windows.stall_silence_s
        gap_max = min(6 * HOUR, stall / 4)
        city = self.rng.choice(PLACES)[1]
        steps: list[Step] = []
        at = paid_at + rng.uniform(2, 5) * HOUR

        def scan(status: str, reason: str | None = None, label_: str | None = None) -> None:
            steps.append(Step(at, Scan(order.ref, status, f"{city} hub", reason), label_))

        scan("picked_up")
        if variant == "overdue":
            # Scanned on time, never stalled, but delivered long after the promise.
            until = paid_at + self.windows.delivery_promise_s + 8 * HOUR
            while at < until:
                at += rng.uniform(0.5, 1) * gap_max
                scan("in_transit")
        else:
            if variant == "stall":
                gap_max /= 2  # the silence takes most of the promise
            for n in range(2 if variant == "stall" else rng.randint(2, 4)):
                at += rng.uniform(0.5, 1) * gap_max
                if variant == "exception" and n == 1:
                    reason = EXCEPTION_REASONS[self.counters.get("exception", 0) % 4]
                    self.counters["exception"] = self.counters.get("exception", 0) + 1
                    scan("exception", reason, label)
                elif variant == "stall" and n == 1:
                    scan("in_transit", label_=label)
                    at += 1.5 * stall  # silence
                    scan("in_transit")
                    steps[-1] = Step(steps[-1].at, steps[-1].action, min_gap_s=1.5 * stall)
                else:
                    scan("in_transit")
        at += rng.uniform(0.4, 0.8) * gap_max
        scan("out_for_delivery")
        at += rng.uniform(0.2, 0.5) * gap_max
        scan("delivered")
        if variant != "overdue" and at - paid_at > 0.85 * self.windows.delivery_promise_s:
            raise AssertionError("a clean journey would be overdue")  # the windows forbid it
        return steps, at

    def after_delivery(self, order: PlaceOrder, delivered_at: float) -> list[Step]:
        """Sometimes a return, a refund or a complaint; each answered well within its SLA."""
        roll = self.rng.random()
        cfg = self.config
        refundable = order.customer_id not in self.refunded | self.reserved_customers
        if refundable and roll < cfg.return_rate:
            self.refunded.add(order.customer_id)
            return self.case_flow(order, delivered_at, "return")
        roll -= cfg.return_rate
        if refundable and roll < cfg.refund_rate:
            self.refunded.add(order.customer_id)
            return self.case_flow(order, delivered_at, "refund")
        roll -= cfg.refund_rate
        if roll < cfg.complaint_rate:
            return self.case_flow(order, delivered_at, "complaint")
        return []

    def case_flow(
        self, order: PlaceOrder, after: float, case_type: str, at: float | None = None
    ) -> list[Step]:
        rng = self.rng
        case = self.next_id("k")
        line = order.lines[0]
        answer = 0.25 * self.windows.first_response_s
        at = at if at is not None else after + rng.uniform(6, 30) * HOUR
        steps = []
        if case_type == "return":
            steps.append(
                Step(
                    at,
                    OpenCase(
                        case,
                        order.ref,
                        "return",
                        ((line.sku, line.quantity),),
                        rng.choice((None, "does not fit the shelf", "changed my mind")),
                    ),
                )
            )
            at += rng.uniform(0.1, 1) * answer
            steps.append(Step(at, Comment(case, "Return approved; please send it back.")))
            at += rng.uniform(12, 36) * HOUR
            steps.append(Step(at, CaseAction(case, "receive_goods")))
            at += rng.uniform(1, 4) * HOUR
            amount = line.unit_price * line.quantity
            steps.append(
                Step(at, Refund(case, ((line.sku, line.quantity, amount),), "goods returned"))
            )
            steps.append(Step(at + HOUR, CaseAction(case, "close")))
        elif case_type == "refund":
            steps.append(
                Step(
                    at,
                    OpenCase(
                        case, order.ref, "refund", ((line.sku, 1),), "arrived with a chipped rim"
                    ),
                )
            )
            at += rng.uniform(0.1, 1) * answer
            steps.append(Step(at, CaseAction(case, "approve")))
            at += rng.uniform(0.5, 2) * HOUR
            steps.append(
                Step(at, Refund(case, ((line.sku, 1, line.unit_price),), "damaged in transit"))
            )
            steps.append(Step(at + HOUR, CaseAction(case, "close")))
        else:
            steps.append(
                Step(
                    at,
                    OpenCase(case, order.ref, "complaint", (), "the courier left it in the rain"),
                )
            )
            at += rng.uniform(0.1, 1) * answer
            steps.append(Step(at, Comment(case, "Sorry about that; we are looking into it.")))
            for action in ("collect_evidence", "investigate", "resolve", "request_feedback"):
                at += rng.uniform(2, 8) * HOUR
                resolution = "apology and a coupon" if action == "resolve" else None
                steps.append(Step(at, CaseAction(case, action, resolution=resolution)))
            at += rng.uniform(6, 24) * HOUR
            steps.append(Step(at, CaseAction(case, "visit")))
            steps.append(Step(at + HOUR, CaseAction(case, "score", rng.randint(3, 5))))
        return steps

    def life(
        self,
        order: PlaceOrder,
        at: float,
        name: str,
        variant: str = "clean",
        label: str | None = None,
        cases: bool = True,
        place_label: str | None = None,
    ) -> list[Step]:
        steps = [Step(at, order, place_label)]
        paid = self.paid_steps(order, at, allow_failure=variant == "clean")
        if variant == "overdue":
            paid[-1] = Step(paid[-1].at, paid[-1].action, label)
        steps += paid
        scans, delivered = self.journey(order, paid[-1].at, variant, label)
        steps += scans
        if cases:
            steps += self.after_delivery(order, delivered)
        self.stories.append(Story(name, tuple(steps)))
        return steps

    def clean_order(self, at: float) -> None:
        customer = self.customer()
        order = self.order(at, customer)
        self.life(order, at, f"order {order.ref}")

    # injections

    def label(self, kind: str, match: dict[str, str], note: str, fires_after_s: float = 0.0) -> str:
        anomaly = PlannedAnomaly(self.next_id("a-"), kind, KINDS[kind], match, fires_after_s, note)
        self.anomalies.append(anomaly)
        return anomaly.id

    def inject_low_stock(self, at: float, n: int) -> None:
        sku = self.sku(f"CLEAR{n + 1}")
        self.setup.append(SetStock(sku, "main", CLEARANCE_THRESHOLD + 4, CLEARANCE_THRESHOLD))
        customer = self.customer()
        label = self.label(
            "low_stock",
            {"sku": sku, "warehouse": "main"},
            f"an order of 5 takes {sku} from {CLEARANCE_THRESHOLD + 4} to"
            f" {CLEARANCE_THRESHOLD - 1} available, threshold {CLEARANCE_THRESHOLD}",
        )
        order = self.order(at, customer, (Line(sku, 5, Decimal("15.00")),), warehouse="main")
        self.signatures.add((customer.customer_id, ((sku, 5),)))
        steps = self.life(order, at, f"low stock {sku}", cases=False, place_label=label)
        restock = ReceiveStock(sku, "main", 40, self.next_id("PO-"))
        self.stories.append(Story(f"restock {sku}", (Step(steps[-1].at + HOUR, restock),)))

    def inject_stalled_tracking(self, at: float, n: int) -> None:
        order = self.order(at, self.customer())
        label = self.label(
            "stalled_tracking",
            {"order_id": f"@{order.ref}"},
            "the parcel goes silent in transit for 1.5x the stall silence, then resumes",
            self.windows.stall_silence_s,
        )
        self.life(order, at, f"stall {order.ref}", "stall", label, cases=False)

    def inject_overdue_delivery(self, at: float, n: int) -> None:
        order = self.order(at, self.customer())
        label = self.label(
            "overdue_delivery",
            {"order_id": f"@{order.ref}"},
            "scanned regularly but delivered 8 h after the promise",
            self.windows.delivery_promise_s,
        )
        self.life(order, at, f"overdue {order.ref}", "overdue", label, cases=False)

    def inject_carrier_exception(self, at: float, n: int) -> None:
        order = self.order(at, self.customer())
        reason = EXCEPTION_REASONS[self.counters.get("exception", 0) % 4]
        label = self.label(
            "carrier_exception",
            {"order_id": f"@{order.ref}", "reason": reason},
            f"the carrier reports the parcel {reason}, then delivers it",
        )
        self.life(order, at, f"exception {order.ref}", "exception", label, cases=False)

    def inject_repeated_refunds(self, at: float, n: int) -> None:
        customer = self.fresh_customer()
        threshold = self.windows.refund_threshold
        label = self.label(
            "repeated_refunds",
            {"customer_id": customer.customer_id},
            f"{threshold} refunds for one customer within hours",
        )
        refunds_at = at + 60 * HOUR
        for i in range(threshold):
            order_at = at + i * HOUR
            order = self.order(order_at, customer)
            steps = self.life(
                order, order_at, f"refunds {customer.customer_id} #{i + 1}", cases=False
            )
            case_steps = [
                Step(s.at, s.action, label if isinstance(s.action, Refund) else None)
                for s in self.case_flow(order, 0, "refund", at=refunds_at + i * 30 * MINUTE)
            ]
            self.stories[-1] = Story(self.stories[-1].name, tuple(steps + case_steps))

    def inject_payment_failure_burst(self, at: float, n: int) -> None:
        overall = n % 2 == 1
        if overall:
            # Spread over channels, under each channel's threshold: only the overall scope fires.
            total = self.windows.payment_overall_threshold
            per = self.windows.payment_threshold - 1
            channels = [c for c, _ in CHANNELS for _ in range(per)][:total]
            match = {"scope": "overall"}
        else:
            channel = CHANNELS[(n // 2) % len(CHANNELS)][0]
            channels = [channel] * self.windows.payment_threshold
            match = {"scope": "channel", "channel": channel}
        label = self.label(
            "payment_failure_burst",
            match,
            f"{len(channels)} payment failures within"
            f" {self.windows.payment_burst_span_s:g} s (simulated)",
        )
        # One story per failing order, so that no failure waits for the other orders' requests.
        for i, channel in enumerate(channels):
            order_at = at - 10 * MINUTE + i
            order = self.order(order_at, self.customer(), channel=channel)
            failed_at = at + i * self.windows.payment_burst_span_s / len(channels)
            code = self.rng.choice(FAILURE_CODES)
            # The customer pays again a little later (after the failure, in the same story: a
            # success first would leave nothing to fail); the parcel goes out as usual.
            paid_at = at + 10 * MINUTE + i
            steps = (
                Step(order_at, order),
                Step(failed_at, self.payment(order, code), label),
                Step(paid_at, self.payment(order)),
            )
            self.stories.append(Story(f"failure burst {label} {order.ref}", steps))
            scans, _ = self.journey(order, paid_at)
            self.stories.append(Story(f"burst parcel {order.ref}", tuple(scans)))

    def inject_duplicate_order(self, at: float, n: int) -> None:
        customer = self.customer()
        first = self.order(at, customer)
        label = self.label(
            "duplicate_order",
            {"customer_id": customer.customer_id},
            "the same lines to the same address again within minutes (not paid)",
        )
        self.life(first, at, f"duplicated {first.ref}", cases=False, place_label=label)
        twin_at = at + self.rng.uniform(1, 4) * MINUTE
        twin = self.order(twin_at, customer, first.lines, first.channel, warehouse=first.warehouse)
        self.stories.append(Story(f"duplicate {twin.ref}", (Step(twin_at, twin, label),)))

    def inject_bad_address(self, at: float, n: int) -> None:
        customer = self.customer()
        part, value = BAD_ADDRESSES[n % len(BAD_ADDRESSES)]
        address = Address(**{**customer.address.__dict__, part: value})
        order = self.order(at, customer, address=address)
        label = self.label(
            "bad_address",
            {"order_id": f"@{order.ref}", "reason": "address_incomplete"},
            f"{part} is {value!r}: held at intake (order.held.v1), never paid",
        )
        self.stories.append(Story(f"bad address {order.ref}", (Step(at, order, label),)))

    def inject_sla_breach(self, at: float, n: int) -> None:
        order = self.order(at, self.customer())
        steps = self.life(order, at, f"sla {order.ref}", cases=False)
        case = self.next_id("k")
        label = self.label(
            "sla_breach",
            {"case_id": f"@{case}"},
            "a complaint nobody answers",
            self.windows.first_response_s,
        )
        opened = OpenCase(case, order.ref, "complaint", (), "the box was crushed")
        self.stories[-1] = Story(
            self.stories[-1].name, (*steps, Step(steps[-1].at + 2 * HOUR, opened, label))
        )

    def inject_inventory_inconsistency(self, at: float, n: int) -> None:
        sku = self.sku(f"AUDIT{n + 1}")
        self.setup.append(SetStock(sku, "main", 60, 5))
        extra = self.rng.randint(1, 4)
        label = self.label(
            "inventory_inconsistency",
            {"sku": sku, "warehouse": "main", "check": "count"},
            f"a count finds {extra} more on the shelf than recorded",
        )
        count = CountStock(sku, "main", 60 + extra, "clerk-9")
        self.stories.append(Story(f"count {sku}", (Step(at, count, label),)))


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]
