"""order: orders, their state machine and their timeline (later, the order recycle bin)."""
