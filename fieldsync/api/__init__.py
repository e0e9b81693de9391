"""REST API v1: token authentication, permissions, idempotency, pagination and the views (billing.py, exports.py)."""
