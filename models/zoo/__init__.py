"""Shipped checkpoints (data only; listed and rebuilt by models.catalog)."""
