"""A labelled traffic generator for orderguard and the check of what the detectors raised.

- `plan`: what happens when (a believable shop plus injected anomalies) — pure, seeded.
- `scale`: time compression: the detectors file and the simulated-to-real clock.
- `player`: plays a plan through the services' HTTP APIs and topics (the only I/O).
- `observe`: reads what the system raised (anomalies.detected, order holds).
- `quality`: compares raised with labelled — pure.
"""
