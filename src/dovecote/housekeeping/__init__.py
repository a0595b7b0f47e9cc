"""Housekeeping: pruning what is kept only for a while (idempotency keys, live events)."""
