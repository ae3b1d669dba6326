"""Alembic migrations of the tracking store (run programmatically by ``tracking.migrate``)."""
