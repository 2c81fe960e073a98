"""Errors the lab raises to its own callers (the engine API turns them into faults)."""


class LabError(Exception):
    """An operation the simulated cluster refuses; the message is shown to the user."""
