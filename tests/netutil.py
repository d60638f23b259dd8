"""Loopback network helpers for tests: a free port, a forwarder that can be opened late."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Forwarder:
    """A loopback TCP forwarder the test opens and closes: the exporter 'away' and 'back'
    for the client while it keeps measuring."""

    def __init__(self, port: int, target: int) -> None:
        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                up = socket.create_connection(("127.0.0.1", target))
                pumps = [
                    threading.Thread(target=self.pump, args=(a, b), daemon=True)
                    for a, b in ((self.request, up), (up, self.request))
                ]
                for t in pumps:
                    t.start()
                for t in pumps:
                    t.join(60)

            @staticmethod
            def pump(a: socket.socket, b: socket.socket) -> None:
                try:
                    while data := a.recv(65536):
                        b.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (a, b):
                        with contextlib.suppress(OSError):
                            s.shutdown(socket.SHUT_RDWR)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Pipe)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
