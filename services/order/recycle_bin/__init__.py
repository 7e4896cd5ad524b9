"""The order recycle bin: orders set aside, restorable, archived, purged after retention."""
