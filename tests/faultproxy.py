"""A fault-injecting HTTP proxy on loopback, in front of a real Tryton.

Faults are queued per JSON-RPC method and each is used once: the request gets
the fault instead of (or, for ``slow``, after) the real answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

KINDS = ("500", "503", "429", "reset", "truncated", "garbage", "slow")


class FaultProxy:
    def __init__(self, upstream: str, slow_seconds: float = 2.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_seconds = slow_seconds
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.injected: list[tuple[str, str]] = []
        self.calls: dict[str, int] = defaultdict(int)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                method = json.loads(body or b"{}").get("method", "")
                proxy.calls[method] += 1
                fault = proxy.faults[method].popleft() if proxy.faults[method] else None
                if fault:
                    proxy.injected.append((method, fault))
                if fault in ("500", "503", "429"):
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "reset":
                    self.connection.close()
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type")
                }
                upstream = requests.post(
                    proxy.upstream + self.path, data=body, headers=headers, timeout=120
                )
                payload = upstream.content
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                if fault == "garbage":
                    payload = b"<html>502 Bad Gateway</html>"
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                length = len(payload) + (100 if fault == "truncated" else 0)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2] if fault == "truncated" else payload)
                if fault == "truncated":
                    self.connection.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def inject(self, method: str, *faults: str) -> None:
        assert all(f in KINDS for f in faults)
        self.faults[method].extend(faults)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
