"""A TCP proxy on 127.0.0.1 that a test can cut, throttle and count: the "uplink" between box and broker.

``cut()`` closes every open connection (the box sees its link drop and reconnects through the proxy);
``rate`` (bytes/s, broker -> box) slows a download down so a test can cut it half way; ``bytes_down`` counts
what crossed towards the box, i.e. the real cost of a transfer on the wire.
"""
from __future__ import annotations

import selectors
import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", rate: float | None = None):
        self.target = (target_host, target_port)
        self.rate = rate
        self.bytes_down = 0
        self.bytes_up = 0
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, name="proxy-accept")
        self._accept.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            t = threading.Thread(target=self._pump, args=(client, upstream), name="proxy-pump")
            t.start()
            self._threads.append(t)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.1):
                    src, dst = key.fileobj, key.data
                    data = src.recv(16384 if self.rate else 65536)
                    if not data:
                        return
                    if src is upstream:
                        self.bytes_down += len(data)
                        if self.rate:
                            time.sleep(len(data) / self.rate)
                    else:
                        self.bytes_up += len(data)
                    dst.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> int:
        """Drop every connection now (RST); returns how many were open."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        return len(pairs)

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)
        self._listener.close()
