"""Run a command on the portal machine itself: the foundation's diagnostic."""
import subprocess
import threading

from .base import CommandResult, RemoteError


def run_local(command, on_line, *, timeout=600):
    """Run ``command`` with bash, calling ``on_line(stream, text)`` per line as it comes."""
    try:
        proc = subprocess.Popen(
            ["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise RemoteError(f"cannot start local command: {exc}") from exc

    def pump(pipe, stream):
        for raw in iter(pipe.readline, b""):
            on_line(stream, raw.decode("utf-8", errors="replace").rstrip("\n"))
        pipe.close()

    readers = [threading.Thread(target=pump, args=(proc.stdout, "stdout"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "stderr"), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RemoteError(f"command timed out after {timeout} s") from None
    for reader in readers:
        reader.join()
    return CommandResult(exit_status=status)
