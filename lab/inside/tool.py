#!/.lab/usr/bin/python3 -IS
"""A simulated tool of the lab (hosted-engine, yum, systemctl, ...), as installed on a host.

The simulator runs the command: this asks it over the machine's socket (/.lab/sock),
copies what it prints to stdout and stderr as it comes, reads stdin only when the tool
asks (one line, or everything), and exits with the tool's status. The other end is
lab/tools.py. Frames are one letter, a 4-byte length and the data.
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


def read_stdin(line):
    """One line byte by byte (what follows stays for the next reader), or all of it."""
    data = b""
    try:
        while not (line and data.endswith(b"\n")):
            chunk = os.read(0, 1 if line else 65536)
            if not chunk:
                break
            data += chunk
    except OSError:  # no stdin at all: end of input
        pass
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
            send(sock, b"D", read_stdin(line=kind == b"L"))
        elif kind == b"X":
            sys.exit(int(data))


main()
