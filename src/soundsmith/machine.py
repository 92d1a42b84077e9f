"""What soundsmith measures about a machine once and remembers: `<cache>/machine.json`.

runtime.linear_path() times MKL against oneDNN on one matrix product to choose how float32 linear layers multiply:
0.3 CPU seconds (0.15 s on 2 cores) at the start of every process, about a tenth of the bundled demo's first sound,
and a verdict that can flip from one process to the next on a busy machine. The answer depends on the machine, not
on the run, so it is measured once per machine key (CPU model, logical CPUs, torch version, threads) and read back
afterwards. The cache folder is SOUNDSMITH_CACHE, else $XDG_CACHE_HOME/soundsmith, else ~/.cache/soundsmith;
delete machine.json to measure again; SOUNDSMITH_CPU_LINEAR=onednn|blas still forces a path without measuring.
"""

import json
import os
import platform
import secrets
from pathlib import Path
from typing import Callable

FILE = "machine.json"


def cache_dir() -> Path:
    if os.environ.get("SOUNDSMITH_CACHE"):
        return Path(os.environ["SOUNDSMITH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "soundsmith"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key() -> str:
    """What a remembered measurement depends on: CPU model, logical CPUs, torch version, torch threads."""
    import torch

    return f"{cpu_model()} | {os.cpu_count()} CPUs | torch {torch.__version__} | {torch.get_num_threads()} threads"


def remembered(name: str, measure: Callable[[], str]) -> str:
    """The value stored for `name` on this machine key, else measure() once and store it. A cache that cannot be
    read or written (read-only home, a corrupt file) only means measuring again."""
    path, key = cache_dir() / FILE, machine_key()
    try:
        known = json.loads(path.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    entry = known.get(key) if isinstance(known.get(key), dict) else {}
    if isinstance(entry.get(name), str):
        return entry[name]
    value = measure()
    known[key] = {**entry, name: value}
    _write_atomically(path, json.dumps(known, indent=1, sort_keys=True) + "\n")
    return value


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError:
        try:
            temporary.unlink()
        except OSError:
            pass
