"""A small HTTP proxy that forwards to a real server and fails chosen requests on purpose.

``proxy.fail_next(503)`` answers the next request itself with that status (optionally with headers such as
``Retry-After``); ``proxy.delay_next(5.0)`` holds the next request that long before forwarding it. Everything
else is forwarded unchanged, so replies are the real server's. ``proxy.seen`` counts requests per path.
"""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream_base_url: str):
        parts = urlsplit(upstream_base_url)
        self.upstream = (parts.hostname, parts.port)
        self.prefix = parts.path.rstrip("/")  # e.g. /v1
        self.faults: collections.deque = collections.deque()
        self.seen: collections.Counter = collections.Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.faults.extend([("status", status, headers or {})] * times)

    def delay_next(self, seconds: float) -> None:
        with self.lock:
            self.faults.append(("delay", seconds, {}))

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._forward(body)

            def _forward(self, body: bytes | None) -> None:
                with proxy.lock:
                    proxy.seen[self.path] += 1
                    fault = proxy.faults.popleft() if body is not None and proxy.faults else None
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    self._answer(body, fault)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

            def _answer(self, body: bytes | None, fault) -> None:
                if fault and fault[0] == "status":
                    payload = json.dumps({"error": {"message": f"injected {fault[1]}", "code": fault[1]}}).encode()
                    self.send_response(fault[1])
                    for k, v in fault[2].items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault and fault[0] == "delay":
                    time.sleep(fault[1])
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                try:
                    self.send_response(reply.status)
                    for k, v in reply.getheaders():
                        if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    conn.close()

        return Handler
