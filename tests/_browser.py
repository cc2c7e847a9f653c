"""Headless Chromium driven through the Chrome DevTools protocol (tornado's websocket client; no
browser download, no Playwright): open a page, evaluate JavaScript, click, take a screenshot."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--mute-audio"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One page of a headless Chromium, open at ``url`` until :meth:`close`."""

    def __init__(self, url: str, *, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self._profile = tempfile.mkdtemp(prefix="archsearch-chromium-")
        self._proc = subprocess.Popen(
            [exe, *CHROMIUM_FLAGS, "--remote-debugging-port=0", f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.timeout = timeout
        port = self._port()
        deadline = time.monotonic() + timeout
        while True:  # the page target appears once the URL is loading
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as resp:
                pages = [t for t in json.load(resp) if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not pages:
            self.close()
            raise RuntimeError("chromium opened no page")
        self._ws_url = pages[0]["webSocketDebuggerUrl"]
        self._loop = asyncio.new_event_loop()
        self._ws = self._loop.run_until_complete(self._connect())
        self._id = 0
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def _port(self) -> int:
        # chromium prints "DevTools listening on ws://127.0.0.1:PORT/..." on stderr once it is up; a
        # thread keeps reading stderr afterwards so that a full pipe never blocks the browser
        lines: queue.Queue[str] = queue.Queue()

        def drain(stream: Any) -> None:
            for line in stream:
                lines.put(line)
            lines.put("")

        threading.Thread(target=drain, args=(self._proc.stderr,), daemon=True).start()
        deadline = time.monotonic() + self.timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if not line:
                break
            seen.append(line)
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if match:
                return int(match.group(1))
        self.close()
        raise RuntimeError("chromium did not start its DevTools endpoint: " + "".join(seen[-5:]))

    async def _connect(self) -> Any:
        from tornado.websocket import websocket_connect

        return await websocket_connect(self._ws_url, max_message_size=256 * 1024 * 1024)

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        ident = self._id
        await self._ws.write_message(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            raw = await asyncio.wait_for(self._ws.read_message(), self.timeout)
            if raw is None:
                raise RuntimeError("chromium closed the DevTools connection")
            msg = json.loads(raw)
            if msg.get("id") == ident:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Sends a DevTools command and returns its result."""
        return self._loop.run_until_complete(self._call(method, params))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.evaluate(condition):
            if time.monotonic() > deadline:
                raise TimeoutError(condition)
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the element."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'center'}})")
        box = self.evaluate(f"(function(r){{return [r.x + r.width / 2, r.y + r.height / 2]}})"
                            f"(document.querySelector({json.dumps(selector)}).getBoundingClientRect())")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: str | Path | None = None) -> bytes:
        """A PNG of the viewport."""
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def close(self) -> None:
        try:
            if getattr(self, "_ws", None) is not None:
                self._ws.close()
            if getattr(self, "_loop", None) is not None:
                self._loop.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def plot_labels(page: Page) -> list[dict[str, Any]]:
    """Every ``figure.plot`` of the page: its box (and, fifth, the width inside its padding), its SVG's box and
    its labels' text boxes as the browser lays them out (``g[id^="label-"] > text``, the ids
    :mod:`archsearch.report.plots` gives published-model labels), in CSS pixels."""
    return page.evaluate("""Array.from(document.querySelectorAll('figure.plot')).map(function (fig) {
        var svg = fig.querySelector('svg'), s = svg.getBoundingClientRect(), f = fig.getBoundingClientRect();
        var css = getComputedStyle(fig), inner = fig.clientWidth - parseFloat(css.paddingLeft) - parseFloat(css.paddingRight);
        return {figure: [f.left, f.top, f.right, f.bottom, inner], svg: [s.left, s.top, s.right, s.bottom],
                labels: Array.from(svg.querySelectorAll('g[id^="label-"] > text')).map(function (t) {
                    var r = t.getBoundingClientRect();
                    return {id: t.parentNode.id, text: t.textContent, box: [r.left, r.top, r.right, r.bottom]}; })}; })""")


def overlaps(labels: list[dict[str, Any]], *, gap: float = 0.0) -> list[tuple[str, str]]:
    """The pairs of labels whose boxes, grown by ``gap`` pixels each side, overlap."""
    out = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["box"], b["box"]
            if ax0 - gap < bx1 + gap and bx0 - gap < ax1 + gap and ay0 - gap < by1 + gap and by0 - gap < ay1 + gap:
                out.append((a["text"], b["text"]))
    return out


def can_install_chromium() -> bool:
    return os.name == "posix" and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None
