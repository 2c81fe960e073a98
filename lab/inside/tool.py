#!/.lab/usr/bin/python3 -IS
"""A simulated tool of the lab (hosted-engine, yum, systemctl, ...), as installed on a host.

The simulator runs the command: this asks it over the machine's socket (/.lab/sock),
copies what it prints to stdout and stderr as it comes, reads stdin only when the tool
asks (a line, read a buffer at a time as the real tool reads it, or everything), and exits
with the tool's status. The other end is lab/tools.py. Frames are one letter, a 4-byte length and the data.
"""
import _signal
import _socket
import os
import sys

_signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)  # `tool | head -1` ends quietly
_signal.signal(_signal.SIGINT, _signal.SIG_DFL)   # Ctrl-C: no traceback


def send(sock, kind, data=b""):
    sock.sendall(kind + len(data).to_bytes(4, "big") + data)


def receive(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            os.write(2, b"lab: the simulator went away\n")
            sys.exit(255)
        data += chunk
    return data


PENDING = bytearray()  # read from stdin but not used yet: gone when the tool exits


def read_stdin(request):
    """The simulator asks for a line (L, with the read size of the real tool's stdio) or
    everything (A). A line is read as the real program reads it: a whole buffer at a time
    (on a pipe, as much as is there up to that size), so what it read past the line is
    lost to the next reader, as it is when yum on a piped script exits; without a size,
    byte by byte."""
    kind, size = request
    try:
        while kind == b"A" or b"\n" not in PENDING:
            chunk = os.read(0, size or (1 if kind == b"L" else 65536))
            if not chunk:
                break
            PENDING.extend(chunk)
    except OSError:  # no stdin at all: end of input
        pass
    end = PENDING.find(b"\n") + 1 if kind == b"L" else 0
    end = end or len(PENDING)
    data = bytes(PENDING[:end])
    del PENDING[:end]
    return data


def write(fd, data):
    while data:
        data = data[os.write(fd, data):]


def main():
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.connect("/.lab/sock")
    argv = [os.path.basename(sys.argv[0])] + sys.argv[1:]
    send(sock, b"C", b"\0".join(os.fsencode(a) for a in [cwd] + argv))
    while True:
        header = receive(sock, 5)
        kind, data = header[:1], receive(sock, int.from_bytes(header[1:], "big"))
        if kind == b"O":
            write(1, data)
        elif kind == b"E":
            write(2, data)
        elif kind in (b"L", b"A"):
            send(sock, b"D", read_stdin((kind, int(data or b"0"))))
        elif kind == b"X":
            sys.exit(int(data))


main()
