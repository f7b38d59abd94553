"""One polite, safe HTTP fetch: the crawler around img2dataset's per-image work.

img2dataset fetches with a bare `urllib.request.urlopen`, one new connection per image. This
module speaks HTTP through http.client and adds what a web-scale crawler needs: connections are
kept alive and reused per host by every thread of the process (no TCP and TLS handshake per
image); the destination address is checked after DNS resolution and after every redirect (and
the socket connects to the checked address, so DNS rebinding cannot slip past); redirects are
bounded and loops detected; the body is capped; the Content-Type and X-Robots-Tag opt-outs are
honoured (with img2dataset's header parsing, copied here: importing img2dataset costs seconds per
worker process); 429/5xx/connection errors are retried with exponential backoff that honours
Retry-After.
"""

from __future__ import annotations

import collections
import email.utils
import functools
import http.client
import ipaddress
import random
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass

from wit_pipeline.config import FetchConfig
from wit_pipeline.schema import http_status_name

_READ_CHUNK = 64 * 1024
# Types that image hosts commonly send for images; anything else (text/html above all) is refused.
_GENERIC_BINARY_TYPES = {"application/octet-stream", "binary/octet-stream", "application/binary"}


@dataclass
class FetchResult:
    """The outcome of one fetch: the body, or the status and reason it failed.

    `retry_in` (seconds) marks an attempt that failed but is worth another one after that wait
    (`fetch_attempt` only): the status and error say why, and they stand if no retry follows.
    """

    data: bytes | None
    status: str
    error: str | None = None
    http_status: int | None = None
    attempts: int = 1
    retry_in: float | None = None


class FetchError(Exception):
    """A failure with a known status; `retryable` marks the ones worth another attempt."""

    def __init__(
        self,
        status: str,
        message: str,
        http_status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.http_status = http_status
        self.retryable = retryable
        self.retry_after = retry_after


def user_agent(token: str | None) -> str:
    # img2dataset's browser-like string plus a token that robots directives can address.
    agent = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
    return f"{agent} (compatible; {token}; +https://github.com/wit-pipeline)" if token else agent


def fetch(url: str, config: FetchConfig, sleep=time.sleep) -> FetchResult:
    """Fetch `url` with retries, waiting in this thread; never raises for a per-URL failure."""
    attempt = 1
    while True:
        result = fetch_attempt(url, config, attempt)
        if result.retry_in is None:
            return result
        sleep(result.retry_in)
        attempt += 1


def fetch_attempt(url: str, config: FetchConfig, attempt: int = 1) -> FetchResult:
    """Attempt number `attempt` at `url`. A retryable failure with attempts left comes back with
    `retry_in` set, the wait Retry-After or the backoff asks for, so that a caller with other work
    (the download threads) can requeue the URL instead of sleeping."""
    pool = _process_pool(config)
    try:
        data, http_status = _fetch_once(pool, url, config)
        return FetchResult(data, "ok", http_status=http_status, attempts=attempt)
    except FetchError as err:
        if not err.retryable or attempt > config.retries:
            return FetchResult(None, err.status, str(err), err.http_status, attempt)
        delay = _retry_delay(err, attempt, config)
        if delay is None:
            return FetchResult(
                None, err.status, f"{err}; Retry-After exceeds {config.max_retry_after}s", err.http_status, attempt
            )
        return FetchResult(None, err.status, str(err), err.http_status, attempt, retry_in=delay)


def _retry_delay(err: FetchError, attempt: int, config: FetchConfig) -> float | None:
    """Seconds to wait before the next attempt, or None when the server asks for too long."""
    if err.retry_after is not None:
        return err.retry_after if err.retry_after <= config.max_retry_after else None
    backoff = min(config.backoff_max, config.backoff_base * 2 ** (attempt - 1))
    return backoff * (0.5 + random.random() / 2)  # jitter so that retries do not synchronise


_REDIRECTS = {301, 302, 303, 307, 308}
# Reused connections the server closed while idle fail on first use; a GET is safe to resend.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    http.client.BadStatusLine,
)


def _fetch_once(pool: ConnectionPool, url: str, config: FetchConfig) -> tuple[bytes, int]:
    """One attempt: follow redirects (checked and bounded), then read the capped body."""
    visited = [url]
    while True:
        response, connection = _request(pool, url, config)
        data, error, whole = _read_answer(pool, response, connection, config)
        # An answer read whole (a short error or redirect body drained) leaves the connection
        # ready for the next request, also after a 404 or a 429.
        pool.release(connection, reusable=whole and not response.will_close)
        if error is not None:
            raise error
        if data is not None:
            return data, response.status
        url = _next_location(url, response.getheader("Location"), visited, config.max_redirects)
        visited.append(url)


def _read_answer(pool: ConnectionPool, response, connection, config: FetchConfig):
    """(body, None, True) for an image, (None, error, whole) for an HTTP error, (None, None, whole)
    for a redirect, where `whole` says the answer was read to its end; a connection whose state is
    unknown after a failure is closed, not given back."""
    try:
        if response.status in _REDIRECTS and response.getheader("Location"):
            return None, None, _drain(response)
        if response.status >= 400:
            return None, _http_error(response), _drain(response)
        _check_headers(response.headers, pool.robots_token, pool.robots_directives)
        return _read_capped(response, config.max_bytes), None, True
    except FetchError:
        pool.discard(connection)
        raise
    except (OSError, http.client.HTTPException) as err:
        pool.discard(connection)
        raise _connection_error(err) from None


def _request(pool: ConnectionPool, url: str, config: FetchConfig):
    """Send a GET on a pooled connection to the URL's host; resend once if the pooled one went stale."""
    parts = _split(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    for fresh in (False, True):
        connection, reused = pool.connection(parts, fresh=fresh)
        try:
            # Through a plain HTTP proxy the request line carries the whole URL (absolute form).
            line = f"http://{parts.netloc.rpartition('@')[2]}{target}" if connection.absolute_form else target
            connection.request("GET", line, headers=pool.request_headers)
            return connection.getresponse(), connection
        except FetchError:
            pool.discard(connection)
            raise
        except _STALE_CONNECTION_ERRORS as err:
            pool.discard(connection)
            if not reused:
                raise _connection_error(err) from None
        except (OSError, http.client.HTTPException) as err:
            pool.discard(connection)
            raise _connection_error(err) from None
    raise AssertionError("unreachable: the fresh connection either answers or raises")


def _split(url: str):
    """The URL's parts, with a port that is always a number: http.client given a bare IPv6 host
    and no port would split `::1` at its last colon and look up the host `:`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise FetchError("invalid_url", f"url does not parse: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("invalid_url", f"not an http(s) URL: {url[:200]}")
    if port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{443 if parts.scheme == 'https' else 80}")
    return parts


def _next_location(url: str, location: str, visited: list[str], max_redirects: int) -> str:
    new_url = urllib.parse.urljoin(url, location.strip())
    if urllib.parse.urlsplit(new_url).scheme not in ("http", "https"):
        raise FetchError("invalid_url", f"redirect to a non-http(s) URL: {new_url[:200]}")
    if new_url in visited:
        raise FetchError("too_many_redirects", f"redirect loop back to {new_url[:200]}")
    if len(visited) > max_redirects:
        raise FetchError("too_many_redirects", f"more than {max_redirects} redirects")
    return new_url


def _drain(response, limit: int = 64 * 1024) -> bool:
    """Read a short error or redirect body so the connection can be reused (True); a long one is
    not worth it: the response is closed and the connection must not be reused (False)."""
    response.read(limit)
    if response.isclosed():
        return True
    response.close()
    return False


def _http_error(response) -> FetchError:
    code = response.status
    retryable = code == 429 or code >= 500
    retry_after = _parse_retry_after(response.getheader("Retry-After"))
    return FetchError(
        http_status_name(code), f"HTTP {code} {response.reason}", code, retryable=retryable, retry_after=retry_after
    )


def _connection_error(reason) -> FetchError:
    if isinstance(reason, FetchError):
        return reason
    if isinstance(reason, (TimeoutError, socket.timeout)):
        # Not retried: a host slower than the timeout is usually slow again, and retrying would
        # multiply the worst-case time of the whole shard.
        return FetchError("timeout", f"timed out: {reason}")
    if isinstance(reason, socket.gaierror):
        return FetchError("dns_error", f"host name did not resolve: {reason}")
    if isinstance(reason, http.client.IncompleteRead):
        return FetchError(
            "connection_error",
            f"connection dropped mid-body: got {len(reason.partial)} bytes, expected {reason.expected} more",
            retryable=True,
        )
    return FetchError("connection_error", f"{type(reason).__name__}: {reason}", retryable=True)


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_disallowed(headers, token: str | None, directives: frozenset) -> bool:
    """Whether an X-Robots-Tag header, for every agent or for `token`, carries one of `directives`.

    img2dataset 1.47.0's `downloader.is_disallowed`, line for line (tests/test_fetch_robots.py
    asserts equal answers): a copy, because importing img2dataset pulls torch, wandb, pandas and
    albumentations, seconds of start-up in every worker process for one small function.
    """
    for values in headers.get_all("X-Robots-Tag", []):
        parts = values.split(":", 1)
        agent = parts[0].lower() if len(parts) == 2 else None
        if (agent is None or agent == token) and any(d.strip().lower() in directives for d in parts[-1].split(",")):
            return True
    return False


def _check_headers(headers, token: str | None, directives: frozenset) -> None:
    if directives and is_disallowed(headers, token, directives):
        raise FetchError("opted_out", f"X-Robots-Tag: {', '.join(headers.get_all('X-Robots-Tag', []))}")
    content_type = (headers.get_content_type() if headers.get("Content-Type") else "").lower()
    if content_type and not content_type.startswith("image/") and content_type not in _GENERIC_BINARY_TYPES:
        raise FetchError("bad_content_type", f"Content-Type {content_type} is not an image")


def _read_capped(response, max_bytes: int) -> bytes:
    """The body, refused as soon as it is known to exceed `max_bytes` (declared or streamed)."""
    declared = response.headers.get("Content-Length")
    length = int(declared) if declared and declared.isdigit() else None
    if length is not None and length > max_bytes:
        raise FetchError("too_large_bytes", f"Content-Length {declared} exceeds the cap of {max_bytes} bytes")
    if length is not None and not response.chunked:
        # The declared size in one read: one buffer, filled in place (a large photo came in ten
        # 64 kB pieces, then was copied once more to join them).
        body = response.read(length)
        if len(body) < length:
            raise _dropped(len(body), declared)
        return body
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read(_READ_CHUNK)
        if not chunk:
            # http.client returns a short body silently when the peer closes early.
            if length is not None and total < length:
                raise _dropped(total, declared)
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise FetchError("too_large_bytes", f"body exceeds the cap of {max_bytes} bytes")
        chunks.append(chunk)


def _dropped(received: int, declared: str) -> FetchError:
    return FetchError(
        "connection_error", f"connection dropped mid-body: got {received} of {declared} bytes", retryable=True
    )


# --- address guard -------------------------------------------------------------------------


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved and unspecified addresses."""
    ip = _ip(address)
    return ip.is_global and not ip.is_multicast


def _ip(address: str):
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip


@dataclass(frozen=True)
class AddressPolicy:
    """Which destination addresses a fetch may connect to."""

    allow_private: bool = False
    allow_networks: tuple = ()

    @classmethod
    def from_config(cls, config: FetchConfig) -> AddressPolicy:
        return cls(config.allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in config.allow_networks))

    def allows(self, address: str) -> bool:
        if self.allow_private or is_public_address(address):
            return True
        ip = _ip(address)
        return any(ip.version == net.version and ip in net for net in self.allow_networks)


def allowed_addresses(host: str, port: int, policy: AddressPolicy) -> list:
    """Resolve `host` once and keep the addresses the policy allows; none is a private_address error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise FetchError("dns_error", f"{host} did not resolve: {err}") from None
    candidates = [info for info in infos if policy.allows(str(info[4][0]))]
    if not candidates:
        resolved = sorted({str(info[4][0]) for info in infos})
        raise FetchError("private_address", f"{host} resolves to non-public address(es) {', '.join(resolved)}")
    return candidates


# http.client's "no timeout given" marker, private to socket (not in its type stubs).
_DEFAULT_TIMEOUT = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]


def _guarded_create_connection(address, timeout=_DEFAULT_TIMEOUT, source_address=None, *, policy: AddressPolicy, **_):
    """socket.create_connection that resolves once, checks every address, and connects to a checked one."""
    host, port = address
    candidates = allowed_addresses(host, port, policy)
    last_error = OSError(f"no address of {host} to connect to")  # allowed_addresses returns at least one
    for family, socktype, proto, _, sockaddr in candidates:
        sock = socket.socket(family, socktype, proto)
        try:
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as err:
            sock.close()
            last_error = err
    raise last_error


class _GuardedHTTPConnection(http.client.HTTPConnection):
    absolute_form = False

    def __init__(self, *args, policy: AddressPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_guarded_create_connection, policy=policy)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    absolute_form = False

    def __init__(self, *args, policy: AddressPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_guarded_create_connection, policy=policy)


class _ProxyHTTPConnection(http.client.HTTPConnection):
    """A plain-HTTP request through a proxy: to the proxy, with the target in the request line."""

    absolute_form = True


class _ProxyHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS through a proxy: a CONNECT tunnel, then TLS end to end with the target."""

    absolute_form = False


def proxy_for(parts, config: FetchConfig) -> tuple[str, int] | None:
    """(host, port) of the proxy a URL goes through, or None to connect directly."""
    proxy = config.https_proxy if parts.scheme == "https" else config.http_proxy
    if not proxy or _bypasses_proxy(parts.hostname, config.no_proxy):
        return None
    proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not proxy_parts.hostname:
        raise FetchError("invalid_url", f"the proxy {proxy} names no host")
    return proxy_parts.hostname, proxy_parts.port or 80


def _bypasses_proxy(host: str, no_proxy: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower().rstrip(".") for e in no_proxy):
        if entry == "*" or host == entry.lstrip(".") or (entry and host.endswith("." + entry.lstrip("."))):
            return True
    return False


class ConnectionPool:
    """Idle keep-alive connections of one process, at most `size`, keyed by (scheme, host, port).

    Shared by the process's download threads: a thread takes an idle connection to the host (or
    opens one) for one request and gives it back when the answer is read, so a host's connections
    serve every thread and every shard, and the count per host stays near the host-fair queue's
    concurrency limit however many hosts and threads there are. Connections are made through the
    address guard, so a reused connection is one whose address was checked when it was opened.
    """

    def __init__(self, config: FetchConfig, size: int = 256):
        self.config = config
        self.policy = AddressPolicy.from_config(config)
        self.timeout = config.timeout
        # Per-request constants, derived once per pool rather than once per image.
        self.request_headers = {"User-Agent": user_agent(config.user_agent_token), "Accept-Encoding": "identity"}
        self.robots_token = config.user_agent_token.strip().lower() if config.user_agent_token else None
        self.robots_directives = frozenset(d.strip().lower() for d in config.disallowed_header_directives)
        self.size = size
        self._idle: collections.OrderedDict = collections.OrderedDict()  # key -> [connection, ...]
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def connection(self, parts, fresh: bool = False):
        """(connection, reused) for the URL parts, taken for one request; `fresh` forces a new one."""
        key = (parts.scheme, parts.hostname, parts.port)
        if not fresh:
            with self._lock:
                idle = self._idle.get(key)
                if idle:
                    connection = idle.pop()
                    if not idle:
                        del self._idle[key]
                    return connection, True
        connection = self._open(parts)
        connection.pool_key = key
        return connection, False

    def _open(self, parts):
        if parts.scheme == "https":
            # One TLS context per pool: http.client would otherwise build one per connection,
            # reloading the whole CA bundle each time (milliseconds per new connection).
            self._tls = self._tls or ssl.create_default_context()
        proxy = proxy_for(parts, self.config)
        if proxy is None:
            if parts.scheme == "https":
                return _GuardedHTTPSConnection(
                    parts.hostname, parts.port, timeout=self.timeout, policy=self.policy, context=self._tls
                )
            return _GuardedHTTPConnection(parts.hostname, parts.port, timeout=self.timeout, policy=self.policy)
        # The proxy connects for us: the guard checks the target's address here, before any byte
        # is sent (the proxy, a host the user configured, is not subject to it).
        allowed_addresses(parts.hostname, parts.port, self.policy)
        if parts.scheme == "https":
            connection = _ProxyHTTPSConnection(*proxy, timeout=self.timeout, context=self._tls)
            connection.set_tunnel(parts.hostname, parts.port)
            return connection
        return _ProxyHTTPConnection(*proxy, timeout=self.timeout)

    def release(self, connection, reusable: bool) -> None:
        """Give back a connection whose answer was read whole; one the server is closing is closed."""
        if not reusable:
            return connection.close()
        evicted = []
        with self._lock:
            self._idle.setdefault(connection.pool_key, []).append(connection)
            self._idle.move_to_end(connection.pool_key)
            while sum(len(idle) for idle in self._idle.values()) > self.size:
                oldest_key, oldest = next(iter(self._idle.items()))
                evicted.append(oldest.pop(0))
                if not oldest:
                    del self._idle[oldest_key]
        for old in evicted:
            old.close()
        return None

    def discard(self, connection) -> None:
        """Close a connection whose state is unknown (it is not given back)."""
        connection.close()


_pools: dict = {}
_pools_lock = threading.Lock()


def _process_pool(config: FetchConfig) -> ConnectionPool:
    """This process's pool for `config` (a new config, as in tests, gets its own pool)."""
    with _pools_lock:
        if config not in _pools:
            _pools[config] = ConnectionPool(config)
        return _pools[config]
