"""The router: one pipeline for live routing and backtests.

Every firing anomaly passes the stages in order — `silence` (muted for a while?), `inhibit`
(another firing anomaly holds it back?), `route` (the routing tree: which queues, channels,
group and severity), `group` (the route group's timers decide when it is published). Each
stage's rules are pure, in the file named for it; `pipeline.py` runs them over a `RouterStore`
(`store.py`): `PostgresStore` for the live router, one transaction per batch, and `MemoryStore`
for `orderguard backtest` on a simulated clock. A change to routing semantics is made once.
"""
