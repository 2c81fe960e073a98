"""The REST API (``/api/v1/``) and personal API tokens (docs/api.md).

Views here are glue like the pages': the same services, the same permission
check (``upgrades.permissions``) and the same audit function.
"""
