"""Detection: pure detector rules and what runs them.

- `rule`: the contract of a rule (state + event + clock -> state + anomalies), fingerprints.
- `config`: each rule's params from the detectors file, with overrides by label.
- `deadlines`: event-time clocks per partition and the deadline index of timed rules.
- `consumer`: runs a rule under the engine (state cached per partition, stored per batch).
- `faust_driver`: runs the same rules as faust-streaming agents (`worker --engine faust`).
"""
