"""The real service in a subprocess, and Debian's chromium driven by Playwright, for the studio's browser tests
(test_studio.py) and its screenshots (scripts/studio_screenshots.py).

    with Server(models=[folder], data=tmp) as server:      # `soundsmith serve` on a free loopback port
        with browser() as chromium: page = chromium.new_page(); page.goto(server.url)
        server.restart()                                    # kill and start again on the same --data

Playwright's own browser download cannot reach its host here, so the system chromium is launched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
START_TIMEOUT_S = 180.0  # loading a model while other processes share two cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m soundsmith.cli serve --host 127.0.0.1 --port P --models … --data DATA`; stdout and stderr go to
    DATA/../server-N.log (shown when it fails to start)."""

    def __init__(self, models: list[str | os.PathLike], data: str | os.PathLike, extra: list[str] = ()):
        self.models = [str(m) for m in models]
        self.data = Path(data)
        self.extra = list(extra)
        self.process = None
        self.starts = 0
        self.url = ""

    def start(self) -> "Server":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.starts += 1
        self.log = self.data.parent / f"{self.data.name}-server-{self.starts}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "soundsmith.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                   "--models", ",".join(self.models), "--data", str(self.data), *self.extra]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"soundsmith serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"soundsmith serve did not answer /healthz in {START_TIMEOUT_S:g} s:\n"
                           f"{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def browser():
    """Headless Debian chromium under Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
