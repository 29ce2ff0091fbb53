"""An image server that never finishes: the slow or hostile peer of the download deadlines."""

from __future__ import annotations

import socket
import threading


class TrickleServer:
    """Answers 200 with a large Content-Length, then sends one byte every ``interval`` seconds."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n")
                while not self.stopped.wait(self.interval):
                    conn.sendall(b"\x89")
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
