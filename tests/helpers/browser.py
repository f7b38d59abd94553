"""Test helper: open a page in real headless Chromium and watch it through the DevTools protocol.

Chromium is driven over `--remote-debugging-pipe` (JSON messages separated by NUL bytes on file
descriptors 3 and 4), so no port is opened and no extra package is needed. While the page loads,
every console message, uncaught exception, browser log entry (CSP violations land there), dialog
(`alert`) and network request is recorded; afterwards the test evaluates JavaScript in the page
and takes a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
    "--remote-debugging-pipe",
    "--window-size=1280,2000",
]


def chromium_path() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


@dataclass
class PageLoad:
    """What happened while a page loaded, and the means to ask it more."""

    load_seconds: float
    console: list[dict] = field(default_factory=list)
    exceptions: list[dict] = field(default_factory=list)
    log_entries: list[dict] = field(default_factory=list)
    dialogs: list[dict] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors, one line each."""
        found = [f"console.{m['type']}: {m.get('args')}" for m in self.console if m["type"] in ("error", "assert")]
        found += [f"exception: {e.get('exceptionDetails', {}).get('text')}" for e in self.exceptions]
        found += [
            f"log {e['entry']['source']}: {e['entry']['text']}"
            for e in self.log_entries
            if e["entry"]["level"] == "error"
        ]
        return found


class Browser:
    """One headless Chromium with one tab; use as a context manager."""

    def __init__(self, executable: str | None = None):
        self.executable = executable or chromium_path()
        if self.executable is None:
            raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
        self._profile = tempfile.mkdtemp(prefix="wit-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        self._log = open(os.path.join(self._profile, "chromium.log"), "wb")
        # The shell moves our pipe ends onto the descriptors Chromium expects (3: commands, 4: replies).
        self._process = subprocess.Popen(
            [
                "bash",
                "-c",
                'exec "$@" 3<&0 4>&1 </dev/null >/dev/null',
                "chromium",
                self.executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdin=to_browser_read,
            stdout=from_browser_write,
            stderr=self._log,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    # -- protocol

    def _read(self) -> None:
        pending = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            pending += chunk
            *messages, pending = pending.split(b"\0")
            with self._arrived:
                for message in messages:
                    decoded = json.loads(message)
                    if "id" in decoded:
                        self._replies[decoded["id"]] = decoded
                    else:
                        self._events.append(decoded)
                self._arrived.notify_all()

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._arrived:
            if not self._arrived.wait_for(lambda: message["id"] in self._replies, timeout=timeout):
                raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
            reply = self._replies.pop(message["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self, method: str, timeout: float = 60, **params) -> dict:
        return self.call(method, session=self._session, timeout=timeout, **params)

    # -- what tests use

    def load(self, url: str, timeout: float = 60) -> PageLoad:
        """Navigate to `url`, wait for its load event, and return what the page did meanwhile."""
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.page(f"{domain}.enable")
        with self._arrived:
            self._events.clear()
        started = time.monotonic()
        self.page("Page.navigate", url=url)
        with self._arrived:
            loaded = self._arrived.wait_for(lambda: self._has_event("Page.loadEventFired"), timeout=timeout)
        seconds = time.monotonic() - started
        if not loaded:
            raise TimeoutError(f"{url} did not finish loading within {timeout} s")
        self.page("Runtime.evaluate", expression="0")  # a round trip: events of the load have arrived
        return self._page_load(seconds)

    def _has_event(self, method: str) -> bool:
        return any(event["method"] == method for event in self._events)

    def _page_load(self, seconds: float) -> PageLoad:
        with self._arrived:
            events = list(self._events)
        load = PageLoad(load_seconds=seconds)
        for event in events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                load.console.append({"type": params["type"], "args": [a.get("value") for a in params.get("args", [])]})
            elif method == "Runtime.exceptionThrown":
                load.exceptions.append(params)
            elif method == "Log.entryAdded":
                load.log_entries.append(params)
            elif method == "Page.javascriptDialogOpening":
                load.dialogs.append(params)
            elif method == "Network.requestWillBeSent":
                load.requests.append(params["request"]["url"])
        return load

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression evaluated in the page."""
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page raised: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the whole page, not just the window."""
        data = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=5)
        os.close(self._from_browser)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
