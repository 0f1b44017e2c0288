"""A small threaded TCP proxy on 127.0.0.1 that can misbehave on command.

Put it between a client and a real (emulated) server to test what the client does
when the network does:

* ``pause()``          - hold everything: new connections wait before reaching the
                          server and data stops flowing on open ones (a hung network);
* ``pause_after(n)``   - let ``n`` more bytes go upstream, then pause (freeze an
                          upload half-way through);
* ``reset_after(n)``   - let ``n`` more bytes through (either way), then reset every
                          open connection once (a connection dying mid-transfer);
* ``drop()``           - reset every open connection and refuse new ones (server down);
* ``resume()``         - back to a healthy pass-through;
* ``reset_connections()`` - reset the open connections once, keep accepting;
* ``drop_next(n)``     - reset the next ``n`` new connections right after accepting;
* ``fail_next(n)``     - answer the next ``n`` new connections with a raw
                          ``HTTP/1.1 503`` (throttling / a sick load balancer).

Only new connections count for ``drop_next``/``fail_next``; clients keep connections
alive, so call ``reset_connections()`` first to make them reconnect.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_POLL = 0.05


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset'."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0):
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = port
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)  # listener opened/closed
        self._refuse = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._conns: set[_Pipe] = set()
        self._held: set[socket.socket] = set()
        self._drop_next = 0
        self._fail_next = 0
        self._pause_after: int | None = None
        self._reset_after: int | None = None
        self._threads: list[threading.Thread] = []
        #: statistics the tests may look at
        self.bytes_up = 0
        self.bytes_total = 0
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.dropped = 0
        self.failed = 0

    # --- life cycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> TcpProxy:
        self._listen()
        t = threading.Thread(target=self._accept_loop, name="tcp-proxy-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._flowing.set()
        for t in self._threads:
            t.join(timeout=5)  # the accept thread closes the listener on its way out
        self.reset_connections()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        """Open the listening socket (on the same port when re-opened by resume())."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.host, self.port))
            s.listen(128)
        except OSError:
            s.close()
            raise
        s.setblocking(False)  # accept() must never block (see _accept_loop)
        self.port = s.getsockname()[1]
        self._listener = s

    # --- faults ----------------------------------------------------------------------

    def pause(self) -> None:
        self._flowing.clear()

    def pause_after(self, nbytes: int) -> None:
        with self._lock:
            self._pause_after = self.bytes_up + nbytes

    def reset_after(self, nbytes: int) -> None:
        with self._lock:
            self._reset_after = self.bytes_total + nbytes

    def reset_stats(self) -> None:
        with self._lock:
            self.connections = self.dropped = self.failed = 0
            self.max_active = self.active

    def resume(self) -> None:
        with self._cv:
            self._pause_after = self._reset_after = None
            self._drop_next = self._fail_next = 0
            self._refuse = False
            self._cv.wait_for(lambda: self._listener is not None, timeout=10)
            if self._listener is None:
                raise RuntimeError(f"tcp_proxy: cannot listen on port {self.port} again")
        self._flowing.set()

    def drop(self) -> None:
        with self._cv:
            self._refuse = True
            self._cv.wait_for(lambda: self._listener is None, timeout=10)
        self.reset_connections()

    def reset_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
            held = list(self._held)
        for c in conns:
            c.kill()
        for sock in held:
            _reset(sock)

    def drop_next(self, n: int) -> None:
        with self._lock:
            self._drop_next = n

    def fail_next(self, n: int) -> None:
        with self._lock:
            self._fail_next = n

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    def wait_paused(self, timeout: float = 30.0) -> bool:
        """Block until a ``pause_after`` has triggered."""
        steps = int(timeout / _POLL)
        for _ in range(steps):
            if self.paused:
                return True
            self._stopped.wait(_POLL)
        return self.paused

    # --- machinery -------------------------------------------------------------------

    def _accept_loop(self) -> None:
        # Only this thread opens and closes the listener, and never while it is inside
        # select(): a socket closed under a select() in another thread stays alive
        # (and keeps accepting into its backlog) until that select() returns.
        try:
            while not self._stopped.is_set():
                with self._cv:
                    if self._refuse and self._listener is not None:
                        self._listener.close()
                        self._listener = None
                    elif not self._refuse and self._listener is None:
                        try:
                            self._listen()
                        except OSError:
                            pass  # port briefly unavailable: try again next round
                    listener = self._listener
                    self._cv.notify_all()
                if listener is None:
                    self._stopped.wait(_POLL)
                    continue
                ready, _, _ = select.select([listener], [], [], _POLL)
                if not ready:
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    continue  # reset while queued
                client.setblocking(True)
                self._handle(client)
        finally:
            with self._cv:
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None

    def _handle(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            if self._drop_next > 0:
                self._drop_next -= 1
                self.dropped += 1
                action = "drop"
            elif self._fail_next > 0:
                self._fail_next -= 1
                self.failed += 1
                action = "fail"
            else:
                action = "pipe"
        if action == "drop":
            _reset(client)
            return
        target = self._answer_503 if action == "fail" else self._pipe
        threading.Thread(target=target, args=(client,), daemon=True).start()

    def _answer_503(self, client: socket.socket) -> None:
        """Read one request (headers and a Content-Length body) and answer 503."""
        client.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 1 << 20:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            headers = head.decode("latin-1").lower()
            length = 0
            for line in headers.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip() == "content-length":
                    length = int(value.strip() or 0)
            if "100-continue" not in headers:  # drain the body so close() sends no RST
                remaining = length - len(body)
                while remaining > 0:
                    chunk = client.recv(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            msg = b"Service Unavailable (injected by tcp_proxy)"
            client.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\n"
                b"Content-Type: text/plain\r\nRetry-After: 0\r\nConnection: close\r\n"
                + b"Content-Length: %d\r\n\r\n" % len(msg)
                + msg
            )
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            client.close()

    def _pipe(self, client: socket.socket) -> None:
        # a held connection waits here (pause) before it even reaches the server
        with self._lock:
            self._held.add(client)
        try:
            while not self._flowing.wait(_POLL):
                if self._stopped.is_set() or client.fileno() < 0:
                    return
        finally:
            with self._lock:
                self._held.discard(client)
        if client.fileno() < 0:  # reset by drop() while held
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        pipe = _Pipe(client, upstream)
        with self._lock:
            self._conns.add(pipe)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self._pump(pipe)
        except (OSError, ValueError):
            pass  # reset by a fault or by the peers
        finally:
            with self._lock:
                self._conns.discard(pipe)
                self.active -= 1
            pipe.close()

    def _pump(self, pipe: _Pipe) -> None:
        socks = [pipe.client, pipe.upstream]
        while self._live(pipe):
            if not self._flowing.is_set():
                self._flowing.wait(_POLL)
                continue
            ready, _, _ = select.select(socks, [], [], _POLL)
            for s in ready:
                try:
                    data = s.recv(256 * 1024)
                except BlockingIOError:
                    continue
                if not data:
                    return  # one side closed: HTTP needs no half-open connections
                up = s is pipe.client
                self._send_all(pipe, pipe.upstream if up else pipe.client, data)
                self._count(len(data), up)

    def _live(self, pipe: _Pipe) -> bool:
        return not pipe.killed and not self._stopped.is_set()

    def _send_all(self, pipe: _Pipe, sock: socket.socket, data: bytes) -> None:
        """sendall that a fault can interrupt (non-blocking sockets + select)."""
        view = memoryview(data)
        while view:
            if not self._live(pipe):
                raise ConnectionResetError("killed by the proxy")
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                select.select([], [sock], [], _POLL)

    def _count(self, n: int, up: bool) -> None:
        reset = False
        with self._lock:
            self.bytes_total += n
            if up:
                self.bytes_up += n
            if up and self._pause_after is not None and self.bytes_up >= self._pause_after:
                self._pause_after = None
                self._flowing.clear()
            if self._reset_after is not None and self.bytes_total >= self._reset_after:
                self._reset_after = None
                reset = True
        if reset:
            self.reset_connections()


class _Pipe:
    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.killed = False
        client.setblocking(False)
        upstream.setblocking(False)

    def kill(self) -> None:
        """Reset both sides (the pump thread notices and exits)."""
        self.killed = True
        _reset(self.client)
        _reset(self.upstream)

    def close(self) -> None:
        for s in (self.client, self.upstream):
            try:
                s.close()
            except OSError:
                pass


@contextmanager
def tcp_proxy(upstream_port: int) -> Iterator[TcpProxy]:
    """A running proxy in front of ``127.0.0.1:upstream_port``, stopped afterwards."""
    proxy = TcpProxy(upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
