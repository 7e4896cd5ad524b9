"""inventory: stock per SKU and warehouse, reservations per order, and the low-stock detector."""
