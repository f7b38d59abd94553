"""Test helper: a real, tiny HTTP proxy on 127.0.0.1 (absolute-form GET and CONNECT tunnels),
and a real HTTPS image server with a self-signed certificate made by the openssl CLI."""

from __future__ import annotations

import http.server
import socket
import socketserver
import ssl
import subprocess
import threading
import urllib.parse


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline().decode("latin-1").strip()
        if not line:
            return
        self.server.requests.append(line)
        method, target, _ = line.split(" ", 2)
        headers = []
        while (header := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            headers.append(header)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)))
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            _pipe_both_ways(self.connection, upstream)
            return
        parts = urllib.parse.urlsplit(target)
        upstream = socket.create_connection((parts.hostname, parts.port or 80))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        upstream.sendall(
            f"{method} {path} HTTP/1.1\r\n".encode()
            + b"".join(h for h in headers if not h.lower().startswith((b"connection:", b"proxy-")))
            + b"Connection: close\r\n\r\n"
        )
        # Answer this one request, then close: the client sees `Connection: close` from the target.
        while data := upstream.recv(65536):
            self.wfile.write(data)
        upstream.close()


def _pipe_both_ways(a: socket.socket, b: socket.socket) -> None:
    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()


class _ServedInBackground:
    """A socketserver on 127.0.0.1, served from a daemon thread while the `with` block runs."""

    scheme = "http"

    def __init__(self, server: socketserver.TCPServer):
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


class Proxy(_ServedInBackground):
    """A forwarding proxy on 127.0.0.1 that records every request line it is sent."""

    def __init__(self):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ProxyHandler)
        server.requests = []
        super().__init__(server)

    @property
    def requests(self) -> list[str]:
        return self._server.requests


def self_signed_certificate(folder) -> tuple[str, str]:
    """(cert.pem, key.pem) for 127.0.0.1 and localhost, made by the openssl CLI."""
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
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
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class HttpsImageServer(_ServedInBackground):
    """Serves one image at any path over TLS on 127.0.0.1."""

    scheme = "https"

    def __init__(self, image: bytes, cert: str, key: str):
        image_bytes = image

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(image_bytes)))
                self.end_headers()
                self.wfile.write(image_bytes)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        super().__init__(server)
