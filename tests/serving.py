"""A real `soundsmith serve` in a subprocess (uvicorn on a free loopback port) and the HTTP helpers the service tests
share. Every server is stopped by the fixture that started it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import soundsmith

FINAL = ("succeeded", "failed", "cancelled")
START_TIMEOUT = 300.0  # seconds for a server to answer /healthz (the machine running the tests may be loaded)
JOB_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment() -> dict:
    """The server's environment: this checkout's soundsmith first, no hub, one float32 matrix-product path and one
    thread (so two servers make the same samples whatever each would measure)."""
    env = dict(os.environ)
    src = str(Path(soundsmith.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.update(HF_HUB_OFFLINE="1", SOUNDSMITH_CPU_LINEAR="blas", PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny networks: one thread (spinning pool threads cost more on a busy CPU)
    return env


class Server:
    """`soundsmith serve --models MODEL --data DATA ARGS…` on a free port; start() waits for /healthz."""

    def __init__(self, model: Path, data: Path, *args: str, token: str | None = None):
        self.model, self.data, self.args, self.token = model, data, args, token
        self.process: subprocess.Popen | None = None
        self.log = data.parent / f"{data.name}-server.log"
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        self.port = free_port()
        command = [sys.executable, "-m", "soundsmith.cli", "serve", "--port", str(self.port), "--models",
                   str(self.model), "--data", str(self.data), *self.args]
        if self.token:
            command += ["--token", self.token]
        log = open(self.log, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment())
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """kill -9: no shutdown of any kind."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def client(self, token: str | None = None) -> httpx.Client:
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_for(client: httpx.Client, job_id: str, until=FINAL, timeout: float = JOB_TIMEOUT) -> dict:
    """Poll a job until its status is one of `until` (or a callable says so); returns its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if (job["status"] in until) if not callable(until) else until(job):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:g} s")
        time.sleep(0.1)


def wait_idle(client: httpx.Client, timeout: float = JOB_TIMEOUT) -> None:
    """Until no worker is running a job."""
    deadline = time.monotonic() + timeout
    while client.get("/healthz").json()["busy"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the workers are still busy")
        time.sleep(0.1)
