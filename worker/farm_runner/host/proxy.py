"""The sandbox's only way out: an HTTP proxy on a Unix socket that reaches the package index and
its file hosts, and nothing else (not the worker, not the master, not the rest of the network).

Its clients are the package's code, so it bounds what they can cost the host: at most
MAX_CONNECTIONS at once (more are refused at once, and counted), a request head of at most 64 KB,
and a connection idle for IDLE_SECONDS is closed.
"""

import os
import socket
import threading
import urllib.parse

# One copy of the byte pump serves both ends: the forwarder in the sandbox and this proxy.
from farm_runner.host import index_cache
from farm_runner.inside.forward import pump

MAX_CONNECTIONS = 32
IDLE_SECONDS = 60
MAX_HEAD = 65536


def allowed_endpoints(urls):
    """(host, port) pairs the install may reach: the index and the hosts its files live on."""
    out = set()
    for u in urls:
        parts = urllib.parse.urlsplit(u)
        if parts.hostname:
            out.add((parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)))
    return out


class IndexProxy:
    def __init__(self, path, allowed, cache=None):
        """`cache`: the worker's IndexCache (host/index_cache.py), which answers for its own host name."""
        self.path, self.allowed, self.cache = path, set(allowed), cache
        self.denied = []
        self.refused_over_cap = 0
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)  # in a folder the runner just made: nothing to follow
        self.server.listen(64)
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.server.close()
        finally:
            try:
                os.remove(self.path)
            except OSError:
                pass

    def _serve(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.slots.acquire(blocking=False):
                self.refused_over_cap += 1
                client.close()
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    @staticmethod
    def _answer(client, method, status, ctype, body):
        """Send the cache's answer: bytes, or a file the cache opened (closed here)."""
        try:
            size = len(body) if isinstance(body, bytes) else os.fstat(body.fileno()).st_size
            client.sendall(("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
                status, "OK" if status == 200 else "Error", ctype, size)).encode("latin-1"))
            if method == "HEAD":
                return
            if isinstance(body, bytes):
                client.sendall(body)
            else:
                client.sendfile(body)
        finally:
            if not isinstance(body, bytes):
                body.close()

    def _handle(self, client):
        upstream = None
        try:
            client.settimeout(IDLE_SECONDS)
            head = b""
            while b"\r\n\r\n" not in head:
                if len(head) > MAX_HEAD:
                    return
                data = client.recv(65536)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = (lines[0].split(" ") + ["", ""])[:3]
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                path = None
            else:
                url = urllib.parse.urlsplit(target)
                try:
                    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
                except ValueError:
                    host, port = "", -1
                path = (url.path or "/") + ("?" + url.query if url.query else "")
            host = host.strip("[]").lower()
            try:
                port = int(port)
            except ValueError:
                port = -1
            if self.cache is not None and (host, port) == (index_cache.HOST, 80) and path is not None:
                if method not in ("GET", "HEAD"):
                    client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                    return
                accept = next((l.split(":", 1)[1] for l in lines[1:] if l.lower().startswith("accept:")), "")
                self._answer(client, method, *self.cache.answer(path, accept))
                return
            if (host, port) not in self.allowed:
                self.denied.append("%s:%s" % (host[:100], port))
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection((host, port), timeout=IDLE_SECONDS)
            if path is None:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                headers = [l for l in lines[1:] if not l.lower().startswith(("proxy-", "connection:"))]
                request = "\r\n".join(["%s %s %s" % (method, path, version)] + headers + ["Connection: close"])
                upstream.sendall(request.encode("latin-1") + b"\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            t = threading.Thread(target=pump, args=(client, upstream), daemon=True)
            t.start()
            pump(upstream, client)
            t.join(5)
        except OSError:
            pass
        finally:
            client.close()
            if upstream is not None:
                upstream.close()
            self.slots.release()

