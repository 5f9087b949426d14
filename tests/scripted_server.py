"""A loopback TCP server for the slow and lying peers that HTTP clients must survive: it records
each connection's first bytes and answers with a script of (delay_s, bytes) pieces sent in order,
then holds the connection open until `stop()`.

    server = ScriptedServer([(0, b"HTTP/1.1 200 OK\\r\\ncontent-length: 99\\r\\n\\r\\n")])
    server.url_for("/img.png"); server.received; server.stop()
"""

from __future__ import annotations

import socket
import threading


class ScriptedServer:
    def __init__(self, script: list[tuple[float, bytes]]) -> None:
        self.script = script
        self.received: list[bytes] = []
        self.stopped = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self.received.append(conn.recv(65536))
                for delay, data in self.script:
                    if self.stopped.wait(delay):
                        return
                    conn.sendall(data)
                self.stopped.wait(30)
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()
