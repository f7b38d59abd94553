"""A simulated web on loopback: many HTTPS hosts with latency, for the benchmark and the tests.

On the web a fetch waits: a new connection costs the TCP and TLS round trips, every request its
time to first byte, and most image URLs are HTTPS. A loopback server answers in microseconds and
hides all of that, and with it the difference connection handling makes. This module serves the
devserver's routes (real photos, errors, 429s) from `hosts` servers on distinct loopback
addresses (127.0.0.2, 127.0.0.3, ...), each with:

- TLS with a certificate signed by a CA made at start-up (`ca.pem` in the work folder: hand it to
  any client as SSL_CERT_FILE, which Python's ssl and hence urllib honour);
- `connect_delay` seconds before the TLS handshake of each new connection (the round trips of
  TCP + TLS 1.3), `ttfb` seconds before each answer; a few `slow_hosts` answer 10x slower;
- `/reset/KEY/NAME`: the first request for KEY is answered by a TCP reset, later ones by the image.

`make_urls` spreads URLs over the hosts with Zipf-like shares (a few big CDNs, a long tail) and
mixes in 404s, one-time 429s and resets. Photos of varied size: the folder's, plus upscaled
copies (1,000 to 2,000 px) when asked, as large photos are common on the web.

    python -m wit_pipeline.testing.simweb --images DIR --workdir W --hosts 16 --large 40
writes W/ca.pem and W/hosts.json (the hosts' base URLs, the image names) once serving.
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import ipaddress
import json
import os
import random
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass

from wit_pipeline.testing.devserver import _Handler, load_images


@dataclass(frozen=True)
class WebProfile:
    """The latencies and failure mix of the simulated web."""

    connect_delay: float = 0.06
    ttfb: float = 0.03
    slow_hosts: int = 2
    slow_factor: float = 10.0
    share_404: float = 0.02
    share_429: float = 0.02
    share_reset: float = 0.01


def make_tls_files(folder: str, addresses: list[str]) -> tuple[str, str, str]:
    """A CA and a server certificate for `addresses` (IP SANs), written as PEM files under `folder`.

    Returns (ca.pem, server.pem, server.key). EC P-256 keys: the cheap handshake real CDNs use.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wit simulated web CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sans = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses] + [x509.DNSName("localhost")]
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wit simulated host")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tuple(os.path.join(folder, name) for name in ("ca.pem", "server.pem", "server.key"))
    pem = serialization.Encoding.PEM
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths[1], "wb") as f:
        f.write(server.public_bytes(pem))
    with open(paths[2], "wb") as f:
        f.write(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths[0], paths[1], paths[2]


class _SimulatedHandler(_Handler):
    def do_GET(self):  # noqa: N802 - the http.server naming
        server = self.server
        with server.lock:
            server.requests += 1
            server.in_flight += 1
            server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
        try:
            time.sleep(server.ttfb)
            super().do_GET()
        finally:
            with server.lock:
                server.in_flight -= 1

    def _route_reset(self, rest):
        key, name = rest
        if self._count("reset/" + key) == 1:
            # SO_LINGER with a zero timeout makes close() send a RST, as a crashed or overloaded host.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self._send(200, self._image(name))


class _Host(http.server.ThreadingHTTPServer):
    """One simulated host: a threaded HTTP(S) server that delays each new connection."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: str, images: dict, tls: ssl.SSLContext | None, connect_delay: float, ttfb: float):
        super().__init__((address, 0), _SimulatedHandler)
        self.images, self.tls, self.connect_delay, self.ttfb = images, tls, connect_delay, ttfb
        self.hits: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.connections = self.requests = 0
        self.in_flight = self.peak_in_flight = 0  # requests being answered at once

    def finish_request(self, request, client_address):
        # In the connection's own thread: the delay stands for the TCP and TLS round trips.
        time.sleep(self.connect_delay)
        if self.tls is None:
            return super().finish_request(request, client_address)
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return None
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()  # wrap_socket detached `request`: closing it would not end the connection


class SimulatedWeb:
    """`hosts` servers on 127.0.0.2 ... in this process; use as a context manager."""

    def __init__(
        self,
        image_dir: str,
        workdir: str,
        hosts: int = 16,
        profile: WebProfile = WebProfile(),
        large: int = 0,
        https: bool = True,
        seed: int = 0,
    ):
        self.images = load_images(image_dir)
        if large:
            self.images.update(upscaled_images(self.images, large))
        self.profile = profile
        self.addresses = [f"127.0.0.{2 + i}" for i in range(hosts)]
        self.ca_file = None
        tls = None
        if https:
            self.ca_file, cert, key = make_tls_files(workdir, self.addresses)
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(cert, key)
        slow = set(random.Random(seed).sample(range(hosts // 2, hosts), min(profile.slow_hosts, hosts - hosts // 2)))
        factor = {i: profile.slow_factor if i in slow else 1.0 for i in range(hosts)}
        self.hosts = [
            _Host(a, self.images, tls, profile.connect_delay * factor[i], profile.ttfb * factor[i])
            for i, a in enumerate(self.addresses)
        ]
        self.slow_hosts = sorted(slow)
        self._threads = [threading.Thread(target=h.serve_forever, daemon=True) for h in self.hosts]

    @property
    def bases(self) -> list[str]:
        scheme = "https" if self.ca_file else "http"
        return [f"{scheme}://{str(h.server_address[0])}:{h.server_address[1]}" for h in self.hosts]

    def stats(self) -> dict:
        """Connections accepted, requests answered and the most requests answered at once, per host."""
        return {
            "connections": [h.connections for h in self.hosts],
            "requests": [h.requests for h in self.hosts],
            "peak_in_flight": [h.peak_in_flight for h in self.hosts],
        }

    def start(self) -> SimulatedWeb:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for host in self.hosts:
            host.shutdown()
            host.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def upscaled_images(images: dict[str, bytes], count: int) -> dict[str, bytes]:
    """`count` of the JPEG photos upscaled to 1,000-2,000 px on the longer side (LANCZOS, quality 90)."""
    import cv2
    import numpy as np

    names = [n for n in sorted(images) if n.lower().endswith((".jpg", ".jpeg"))][:count]
    result = {}
    for i, name in enumerate(names):
        pixels = cv2.imdecode(np.frombuffer(images[name], np.uint8), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError(f"{name} is not a decodable image")
        side = 1000 + 1000 * i // max(1, len(names) - 1)
        scale = side / max(pixels.shape[:2])
        big = cv2.resize(
            pixels, (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)), interpolation=cv2.INTER_LANCZOS4
        )
        result[f"large{side}_{name}"] = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    return result


def make_urls(
    bases: list[str], names: list[str], count: int, profile: WebProfile = WebProfile(), seed: int = 0, zipf: float = 1.0
) -> list[str]:
    """`count` distinct URLs over the hosts, host i taking a share proportional to 1 / (i + 1)**zipf;
    a `share_404` of them answer 404, `share_429` answer 429 once, `share_reset` reset once."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** zipf for i in range(len(bases))]
    hosts = rng.choices(range(len(bases)), weights=weights, k=count)
    urls = []
    for i, host in enumerate(hosts):
        name, draw, base = names[i % len(names)], rng.random(), bases[host]
        if draw < profile.share_404:
            urls.append(f"{base}/status/404?{i}")
        elif draw < profile.share_404 + profile.share_429:
            urls.append(f"{base}/ratelimit/u{i}/1/{name}")
        elif draw < profile.share_404 + profile.share_429 + profile.share_reset:
            urls.append(f"{base}/reset/u{i}/{name}")
        else:
            urls.append(f"{base}/img/{i}/{name}")
    return urls


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a simulated web (HTTPS hosts with latency) on loopback.")
    parser.add_argument("--images", required=True, help="folder of real photos to serve")
    parser.add_argument("--workdir", required=True, help="folder for ca.pem and hosts.json")
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--large", type=int, default=0, help="photos to also serve upscaled to 1,000-2,000 px")
    parser.add_argument("--connect-delay", type=float, default=WebProfile.connect_delay)
    parser.add_argument("--ttfb", type=float, default=WebProfile.ttfb)
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    args = parser.parse_args()
    profile = WebProfile(connect_delay=args.connect_delay, ttfb=args.ttfb)
    web = SimulatedWeb(args.images, args.workdir, args.hosts, profile, args.large, https=not args.http).start()
    info = {"bases": web.bases, "ca_file": web.ca_file, "names": sorted(web.images), "slow_hosts": web.slow_hosts}
    path = os.path.join(args.workdir, "hosts.json")
    with open(path + ".tmp", "w") as f:
        json.dump(info, f)
    os.replace(path + ".tmp", path)
    print(f"serving {len(web.images)} images on {len(web.hosts)} hosts: {web.bases[0]} ...", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
