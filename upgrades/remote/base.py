"""What every remote client returns and raises."""
import codecs
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


class HostKeyError(RemoteError):
    """The host offered a key that is not pinned for it: never retried."""

    def __init__(self, message, *, key_type, fingerprint):
        super().__init__(message, retryable=False)
        self.key_type = key_type
        self.fingerprint = fingerprint


class CommandStopped(RemoteError):
    """The command was stopped on request (a run was cancelled)."""


class EngineError(RemoteError):
    """The oVirt engine API refused or failed a request.

    ``unavailable``: the request never reached the engine (its proxy answered 502/503/504
    or an error page, or nothing listened): the engine is down, starting or restarting,
    and the same request may simply be sent again later.
    """

    def __init__(self, message, *, retryable=False, unavailable=False):
        super().__init__(message, retryable=retryable or unavailable)
        self.unavailable = unavailable


class LineSplitter:
    """Turns the chunks of one stream into ``on_line(stream, text)`` calls.

    Splits on ``\\n`` only: ``\\r`` stays in the text for the recorder, which
    shows what a terminal would. A multi-byte character or a line cut
    between two reads is joined before it is delivered.
    """

    def __init__(self, stream, on_line):
        self.stream = stream
        self.on_line = on_line
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._parts = []  # a list, not one growing string: a huge line stays linear

    def feed(self, data):
        text = self._decoder.decode(data)
        if "\n" not in text:
            if text:
                self._parts.append(text)
            return
        lines = text.split("\n")
        if self._parts:
            self._parts.append(lines[0])
            lines[0] = "".join(self._parts)
            self._parts = []
        tail = lines.pop()
        if tail:
            self._parts.append(tail)
        on_line, stream = self.on_line, self.stream
        for line in lines:
            on_line(stream, line)

    def flush(self):
        """Deliver a last line that had no newline (also after a drop)."""
        self._parts.append(self._decoder.decode(b"", final=True))
        text = "".join(self._parts)
        self._parts = []
        if text:
            self.on_line(self.stream, text)
