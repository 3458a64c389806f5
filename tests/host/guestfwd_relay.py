"""QEMU ``guestfwd=...-cmd:`` helper: join one guest connection to 127.0.0.1:PORT.

QEMU runs the command once per guest connection with the connection on stdin and
stdout (a ``tcp:`` chardev target instead connects once and serves one connection).
Usage: ``python guestfwd_relay.py PORT``.
"""

from __future__ import annotations

import os
import select
import socket
import sys


def relay(port: int) -> None:
    """Copy bytes both ways until the server closes its side."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    guest_open = True
    while True:
        watched = [0, sock.fileno()] if guest_open else [sock.fileno()]
        readable, _, _ = select.select(watched, [], [], 30)
        if not readable:
            return
        if 0 in readable:
            data = os.read(0, 65536)
            if data:
                sock.sendall(data)
            else:
                guest_open = False
                sock.shutdown(socket.SHUT_WR)
        if sock.fileno() in readable:
            data = sock.recv(65536)
            if not data:
                return
            os.write(1, data)


if __name__ == "__main__":
    relay(int(sys.argv[1]))
