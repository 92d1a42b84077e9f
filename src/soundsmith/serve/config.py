"""What one `soundsmith serve` process is allowed to do: where it listens, which models it serves, where its data
lives, and the caps on what one request may ask for. Built from the command line (command.py) or directly in
Python (`create_app(Settings(models=("demo",)))`)."""

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument

BACKENDS = ("torch", "openvino", "fastest")  # openvino_unet.BACKENDS, without importing torch here

TOKEN_ENV = "SOUNDSMITH_TOKEN"


def default_data() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/soundsmith/serve, else ~/.local/share/soundsmith/serve."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "soundsmith" / "serve"


@dataclass(frozen=True)
class Settings:
    """host/port: where to listen; models: names or folders clients may ask for (None: `generate`'s choice); data:
    the job database, uploads and outputs; token: the bearer token every /v1 route and /metrics then require;
    workers: jobs run at once (one per worker); queue_size: queued jobs before 429; max_*: per-request caps
    (seconds, sampler steps, waveforms per job, upload megabytes); memory_budget_gb: warm pipelines' weights
    before the least recently used is unloaded (None: no limit); device/dtype: where and how pipelines run; backend:
    what runs their UNet on the CPU (torch, openvino, or fastest: measured per machine and length; openvino_unet)."""

    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] | None = None
    data: Path | None = None
    token: str | None = None
    workers: int = 1
    queue_size: int = 1000
    max_duration: float = 30.0
    max_steps: int = 200
    max_candidates: int = 4
    max_upload_mb: float = 50.0
    memory_budget_gb: float | None = None
    device: str = "auto"
    dtype: str = "float32"
    backend: str = "torch"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise InvalidArgument(f"--backend {self.backend!r} is not allowed (allowed: {', '.join(BACKENDS)})")
        for name in ("workers", "queue_size", "max_steps", "max_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"--{name.replace('_', '-')} {value!r} is not allowed: give a whole number ≥ 1")
        for name in ("max_duration", "max_upload_mb", "memory_budget_gb"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not value > 0):
                raise InvalidArgument(f"--{name.replace('_', '-')} {value!r} is not allowed: give a number > 0")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InvalidArgument(f"--port {self.port!r} is not allowed: give a port between 0 and 65535")
        if self.token is not None and (len(self.token) < 8 or not self.token.isprintable() or " " in self.token):
            raise InvalidArgument("--token is not allowed: give at least 8 printable characters without spaces")
        if self.token is None and not is_loopback(self.host):
            raise InvalidArgument(f"--host {self.host} is not a loopback address: give --token (or {TOKEN_ENV}) so "
                                  f"that only clients holding it can use the service")

    @property
    def data_folder(self) -> Path:
        return Path(self.data).expanduser() if self.data is not None else default_data()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def is_loopback(host: str) -> bool:
    """Whether binding `host` accepts connections from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
