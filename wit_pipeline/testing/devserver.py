"""A local image server that behaves like the web: for the tests and the benchmarks.

It serves real image files from a folder on 127.0.0.1, under distinct paths, together with the
misbehaviours a crawler meets: errors, flaky and rate-limited hosts, slow answers, redirects and
redirect loops, opt-out headers, wrong content types, truncated bodies, decompression bombs and
dropped connections. Run it alone with `python -m wit_pipeline.testing.devserver --images DIR`.

Routes (NAME is a file in the folder):
    /img/NAME, /img/ANYTHING/NAME   the image (so N distinct URLs can share few files)
    /status/CODE                    an empty answer with that HTTP status
    /flaky/KEY/N/NAME               500 for the first N requests of KEY, then the image
    /ratelimit/KEY/N/NAME           429 with Retry-After: 1 for the first N requests, then the image
    /slow/SECONDS/NAME              the image after a delay
    /redirect/NAME                  302 to /img/NAME
    /redirect-to/URL-ENCODED        302 to any URL
    /loop/a, /loop/b                a redirect loop
    /noai/NAME                      the image with X-Robots-Tag: noai
    /html                           a page with Content-Type text/html
    /truncated/NAME                 the first half of the file, honestly labelled by Content-Length
    /bomb.png                       a valid 20000x20000 PNG of a few kilobytes
    /chunked/NAME                   the image without Content-Length (chunked transfer)
    /drop/NAME                      full Content-Length, half the body, then the connection closes
    /notimage.jpg                   text bytes labelled image/jpeg
    /silent-close/NAME              the image, then the connection closes without saying so (as an
                                    idle timeout does), so a client that reuses it must reconnect
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import socket
import struct
import threading
import time
import urllib.parse
import zlib
from collections import Counter


@functools.lru_cache(maxsize=1)
def bomb_png(side: int = 20_000) -> bytes:
    """A real, decodable 1-bit PNG of side x side pixels that compresses to a few kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


class _Server(http.server.ThreadingHTTPServer):
    """The server with the state its handlers share."""

    images: dict[str, bytes]
    hits: Counter[str]  # requests per path
    counters: Counter[str]  # requests per flaky/ratelimit key
    lock: threading.Lock
    connections: int


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    server_version = "wit-devserver"
    protocol_version = "HTTP/1.1"  # keep-alive, as real image hosts
    disable_nagle_algorithm = True  # headers and body go out at once, as real servers send them

    def log_message(self, *args):  # quiet: tests and benchmarks read their own output
        pass

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self):  # noqa: N802 - the http.server naming
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(self.path).path.split("/") if p]
        self.server.hits[self.path] += 1
        route = getattr(self, f"_route_{parts[0].replace('-', '_').replace('.', '_')}", None) if parts else None
        if route is None:
            return self._send(404, b"not found", "text/plain")
        try:
            route(parts[1:])
        except (KeyError, ValueError, IndexError):
            self._send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # --- helpers ---------------------------------------------------------------------------
    def _image(self, name: str) -> bytes:
        return self.server.images[name]

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "image/jpeg",
        headers: dict | None = None,
        length: int | None = None,
    ):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _count(self, key: str) -> int:
        with self.server.lock:
            self.server.counters[key] += 1
            return self.server.counters[key]

    # --- routes ----------------------------------------------------------------------------
    def _route_img(self, rest):
        self._send(200, self._image(rest[-1]))

    def _route_status(self, rest):
        self._send(int(rest[0]), b"", "text/plain")

    def _route_flaky(self, rest):
        key, failures, name = rest
        if self._count("flaky/" + key) <= int(failures):
            return self._send(500, b"try again", "text/plain")
        self._send(200, self._image(name))

    def _route_ratelimit(self, rest):
        key, failures, name = rest
        if self._count("ratelimit/" + key) <= int(failures):
            return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
        self._send(200, self._image(name))

    def _route_slow(self, rest):
        time.sleep(float(rest[0]))
        self._send(200, self._image(rest[-1]))

    def _route_redirect(self, rest):
        self._redirect(f"/img/{rest[-1]}")

    def _route_redirect_to(self, rest):
        self._redirect("/".join(rest))

    def _route_loop(self, rest):
        self._redirect("/loop/b" if rest[0] == "a" else "/loop/a")

    def _route_noai(self, rest):
        self._send(200, self._image(rest[-1]), headers={"X-Robots-Tag": "noai"})

    def _route_html(self, rest):
        self._send(200, b"<html><body>not an image</body></html>", "text/html; charset=utf-8")

    def _route_truncated(self, rest):
        data = self._image(rest[-1])
        self._send(200, data[: len(data) // 2])

    def _route_bomb_png(self, rest):
        self._send(200, bomb_png(), "image/png")

    def _route_notimage_jpg(self, rest):
        self._send(200, b"this is plain text, not a JPEG at all" * 10)

    def _route_chunked(self, rest):
        data = self._image(rest[-1])
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(data), 16384):
            piece = data[start : start + 16384]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _route_silent_close(self, rest):
        self._send(200, self._image(rest[-1]))
        self.close_connection = True

    def _route_drop(self, rest):
        data = self._image(rest[-1])
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class ImageServer:
    """A threaded server on 127.0.0.1 in this process; use as a context manager."""

    def __init__(self, image_dir: str, host: str = "127.0.0.1", port: int = 0):
        self.images = load_images(image_dir)
        server_class = _IPv6Server if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.images = self.images
        self._server.hits = Counter()
        self._server.counters = Counter()
        self._server.lock = threading.Lock()
        self._server.connections = 0
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def hits(self) -> Counter:
        return self._server.hits

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (keep-alive clients open fewer than their requests)."""
        return self._server.connections

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def load_images(image_dir: str) -> dict[str, bytes]:
    images = {}
    for name in sorted(os.listdir(image_dir)):
        path = os.path.join(image_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                images[name] = f.read()
    if not images:
        raise ValueError(f"no image files in {image_dir}")
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve real images with web misbehaviours on 127.0.0.1.")
    parser.add_argument("--images", required=True, help="folder of image files to serve")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument("--port-file", help="write the chosen port to this file once listening")
    args = parser.parse_args()
    server = ImageServer(args.images, port=args.port)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server._server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"serving {len(server.images)} images at {server.url}", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
