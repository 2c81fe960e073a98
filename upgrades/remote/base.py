"""What every remote client returns and raises."""
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    exit_status: int | None
    stdout: str = ""
    stderr: str = ""


class RemoteError(Exception):
    """A remote operation failed; ``message`` is meant for an operator.

    ``retryable`` says whether trying again may help (a dropped connection)
    or not (a refused host key, bad credentials).
    """

    def __init__(self, message, *, retryable=False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
