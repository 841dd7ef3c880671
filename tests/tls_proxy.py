"""HTTPS on loopback for the TLS tests: certificates made with the ``openssl`` CLI,
and a TLS-terminating relay in front of a plain-HTTP server (the real test Tryton,
the spyne SOAP service, a small JSON server), as a reverse proxy would stand in
front of an ERP.  The relay counts the TLS handshakes it was offered, so a test
can tell that a refused certificate was not retried."""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class SelfSigned:
    cert: Path  # the server's certificate: its own CA (what verify_tls = "<file>" names)
    key: Path


def self_signed(folder: Path, name: str = "crm-bridge test ERP") -> SelfSigned:
    """A self-signed certificate for 127.0.0.1 and localhost (``openssl req -x509``)."""
    folder.mkdir(parents=True, exist_ok=True)
    slug = name.replace(" ", "-")
    cert, key = folder / f"{slug}.pem", folder / f"{slug}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return SelfSigned(cert, key)


class TlsProxy:
    """Accepts TLS on a free loopback port and relays the plain bytes to ``target``."""

    def __init__(self, target_port: int, certificate: SelfSigned) -> None:
        self.target_port = target_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate.cert, certificate.key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.handshakes = 0  # TCP connections that started a TLS handshake
        self.refused = 0  # ...that the client broke off (certificate not accepted)
        self.hang_up = False  # True: read the client's hello, then close (a broken link)
        self._lock = threading.Lock()

    def __enter__(self) -> TlsProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        with self._lock:
            self.handshakes += 1
        if self.hang_up:
            conn.recv(65536)
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            return
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            with self._lock:
                self.refused += 1
            conn.close()
            return
        with tls, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            peers = {tls: upstream, upstream: tls}
            while True:
                ready = [tls] if tls.pending() else select.select(list(peers), [], [], 60)[0]
                if not ready:
                    return
                for source in ready:
                    try:
                        data = source.recv(65536)
                    except (ssl.SSLError, OSError):
                        return
                    if not data:
                        return
                    peers[source].sendall(data)


class _Json(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps([]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def json_server() -> Iterator[int]:
    """A plain-HTTP server answering every GET with ``[]`` (an empty list); its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Json)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
