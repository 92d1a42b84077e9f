"""The batch driver: plan every line, skip what the folder already holds, hand the rest out line by line to local
worker processes or Ray actors, and write each result as it lands (outputs.save, then one manifest record).

The driver is the folder's only writer. A line is recorded once: its files are written whole (renamed into place)
before its manifest record is appended, a line whose worker dies goes back to the queue (at most MAX_ATTEMPTS
times), and a rerun starts from the manifest (ledger.py) — so Ctrl-C, kill -9 or a lost node at any moment leaves
every finished line recorded once and the others to be made by the next run.
"""

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InvalidArgument, SoundsmithError
from .ledger import FAILURES, MANIFEST, Ledger, record_files, sha256_file
from .plan import Item, plan
from .worker import Setup, one_line

MAX_ATTEMPTS = 2  # a line whose worker dies this many times fails (it may be what kills them)


class WorkersLost(SoundsmithError):
    """Every worker died again and again: nothing is left to run the remaining lines."""


@dataclass
class Summary:
    """What a run did. `lines`: lines in the jobs file; `skipped`: already in the folder; `made`: made by this run;
    `failed`: failed in this run (DIR/failures.jsonl); `seconds`: wall time of the run."""

    folder: Path
    lines: int
    skipped: int = 0
    made: int = 0
    failed: int = 0
    seconds: float = 0.0
    workers: list[str] = field(default_factory=list)

    @property
    def clips_per_minute(self) -> float:
        return 60.0 * self.made / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        text = (f"{self.lines} lines: {self.made} made, {self.skipped} already done, {self.failed} failed"
                f" ({self.clips_per_minute:.1f} clips/min on {len(self.workers)} worker"
                f"{'s' if len(self.workers) != 1 else ''})")
        return text + (f"; failures in {self.folder / FAILURES}" if self.failed else "")


def run(jobs, out, *, defaults: dict | None = None, base_seed: int = 0, fmt: str = "wav", workers: int | None = None,
        threads: int | None = None, device: str = "auto", dtype: str = "float32", lora: str | None = None,
        compile: bool = False, offload: bool = False, backend: str = "torch", ray: str | bool | None = None,
        progress: bool = True,
        on_record=None, note=None) -> Summary:
    """Run the jobs file `jobs` into the folder `out`. `defaults`: request fields for every line (a line's own
    fields win; "seed" is ignored: lines without one get plan.derive_seed(base_seed, line)). `workers`: processes or
    actors (default: one per device; on CPU one, or the cluster's nodes); `threads`: CPU threads each (default: the
    machine's divided between the local workers). `ray`: None runs locally; "local" / True starts a Ray cluster,
    "auto" joins this machine's, an address connects (a process already connected uses its cluster).
    `on_record(record)` is called after each line lands. Raises plan.BadLines (nothing run) for bad lines."""
    note = note or (lambda message: print(message, file=sys.stderr, flush=True))
    from .. import openvino_unet
    from ..pipelines import is_int8, resolve_device, resolve_dtype

    resolve_dtype(dtype)
    openvino_unet.check_backend(backend, resolve_device(device), compile, is_int8(dtype))
    _positive("--workers", workers)
    _positive("--threads", threads)
    items = plan(jobs, defaults, base_seed=base_seed, fmt=fmt)
    if any(item.request.model is None for item in items):
        from ..checkpoints import default_model

        model, why = default_model()
        note(f"lines without a model use {model} ({why})")
        items = [Item(i.line, i.request.replace(model=model), i.files) if i.request.model is None else i
                 for i in items]
    if ray is None:
        resolve_device(device)
        from ..checkpoints import resolve

        for model in sorted({item.request.model for item in items}):
            resolve(model)  # a missing model fails now, before any folder or worker
    started = time.perf_counter()
    ledger = Ledger(out, note)
    try:
        _check_resume(items, ledger, jobs, out)
        todo = [item for item in items if item.line not in ledger.done]
        summary = Summary(Path(out), len(items), skipped=len(items) - len(todo))
        if not todo:
            return summary
        ledger.start_run()
        _Driver(ledger, todo, summary, dtype, progress, on_record, note).run(
            lambda: _pool(ray, todo, workers, threads, device, dtype, lora, compile, offload, backend, summary))
        summary.seconds = time.perf_counter() - started
        return summary
    finally:
        ledger.close()


def _positive(flag: str, value) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidArgument(f"{flag} {value!r} is not allowed: give a whole number of at least 1")


def _check_resume(items: list[Item], ledger: Ledger, jobs, out) -> None:
    """A folder's records must come from the same lines and settings: a changed line would otherwise be skipped."""
    for item in items:
        record = ledger.done.get(item.line)
        if record is None:
            continue
        recorded = record["request"]
        for key, value in item.request.to_dict().items():
            if recorded.get(key) != value:
                raise InvalidArgument(
                    f"{out}/{MANIFEST} holds line {item.line} made with {key}={recorded.get(key)!r}, but {jobs} line "
                    f"{item.line} now asks for {key}={value!r}: rerun with the same file and flags, or use another "
                    f"--out")
        files = tuple(name for name, _ in record_files(record))
        if files != item.files:
            raise InvalidArgument(f"{out}/{MANIFEST} holds line {item.line} as {files[0]!r}, but this run would "
                                  f"write {item.files[0]!r}: rerun with the same --format, or use another --out")


def _pool(ray, todo, workers, threads, device, dtype, lora, compile, offload, backend, summary):
    """Start the workers: local processes, or actors on a Ray cluster."""
    import torch

    options = dict(dtype=dtype, lora=lora, compile=compile, offload=offload, backend=backend)
    if ray is None:
        from ..pipelines import resolve_device
        from .local import LocalPool

        where = resolve_device(device)
        gpus = torch.cuda.device_count() if where.type == "cuda" and where.index is None else 0
        count = min(workers or max(gpus, 1), len(todo))
        threads = threads or max(1, torch.get_num_threads() // count)
        devices = [f"cuda:{i % gpus}" for i in range(count)] if gpus else [str(where)] * count
        path = _linear_path(threads) if where.type == "cpu" and dtype == "float32" else None
        setups = [Setup(f"local-{i}", devices[i], threads=threads, linear_path=path, **options) for i in range(count)]
        pool = LocalPool(setups)
    else:
        from . import cluster

        owned = cluster.connect(None if ray is True else ray)
        try:
            gpus, cpus, nodes = cluster.resources()
            count = min(workers or (gpus or nodes), len(todo))
            threads = threads or (1 if gpus else max(1, cpus // count))
            path = None if gpus or dtype != "float32" else _linear_path(threads)
            setups = [Setup(f"ray-{i}", "cuda" if gpus else "cpu", threads=threads, linear_path=path, **options)
                      for i in range(count)]
            pool = cluster.RayPool(setups, gpus=bool(gpus), owned=owned)
        except BaseException:
            if owned:
                cluster.disconnect()
            raise
    summary.workers = pool.labels
    return pool


def _linear_path(threads: int) -> str:
    """The float32 CPU linear path, decided once here with the workers' thread count, so every worker multiplies
    the same way and a line's bytes do not depend on which worker made it."""
    import torch

    from .. import runtime

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return runtime.linear_path()
    finally:
        torch.set_num_threads(before)


class _Driver:
    """Hands lines out and records what comes back."""

    def __init__(self, ledger: Ledger, todo: list[Item], summary: Summary, dtype: str, progress: bool, on_record,
                 note):
        self.ledger, self.summary, self.dtype = ledger, summary, dtype
        self.on_record, self.note = on_record, note
        self.queues: dict = {}  # model → deque of items, line order: workers keep their model while it has lines
        for item in todo:
            self.queues.setdefault(item.request.model, deque()).append(item)
        self.attempts: dict[int, int] = {}
        self.last_death = None
        self.total = len(todo)
        self.bar = _bar(self.total, progress)
        self.started = time.perf_counter()

    def run(self, start_pool) -> None:
        pool, loaded, interrupted = None, {}, False
        try:
            pool = start_pool()
            while self._pending() or pool.busy:
                for slot in pool.idle():
                    item = self._take(loaded.get(slot))
                    if item is None:
                        break
                    loaded[slot] = item.request.model
                    pool.submit(slot, item)
                if not pool.busy and self._pending() and not pool.alive():
                    raise WorkersLost(f"every worker died again and again (last: {self.last_death}); "
                                      f"{self._pending()} lines were not run (rerun to retry them)")
                for kind, slot, item, payload in pool.wait(1.0):
                    if kind == "died":
                        loaded.pop(slot, None)
                        self._died(pool.labels[slot], item, payload)
                    else:
                        self._land(item, payload)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            self.bar.close()
            if pool is not None:
                pool.close(now=interrupted)
            if interrupted:
                self.note(f"interrupted: {self.summary.made} lines made in this run; run the same command again to "
                          f"make the other {self.total - self.summary.made - self.summary.failed}")

    def _pending(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def _take(self, model):
        queue = self.queues.get(model)
        if not queue:
            queue = max(self.queues.values(), key=len, default=None)
        return queue.popleft() if queue else None

    def _died(self, label: str, item: Item, why: str) -> None:
        self.last_death = f"{label} {why}"
        self.attempts[item.line] = self.attempts.get(item.line, 0) + 1
        if self.attempts[item.line] >= MAX_ATTEMPTS:
            self._fail(item, f"its worker died {self.attempts[item.line]} times ({why})", {"worker": label})
            return
        self.note(f"worker {label} died ({why}): line {item.line} goes to another worker")
        self.queues.setdefault(item.request.model, deque()).appendleft(item)

    def _land(self, item: Item, result: dict) -> None:
        about = {k: result.get(k) for k in ("worker", "host", "pid")}
        if not result.get("ok"):
            self._fail(item, result.get("error", "unknown error"), about)
            return
        try:
            hashes = self._write(item, result)
        except Exception as exc:  # e.g. a waveform that cannot be written (NaN): the line fails, the batch goes on
            self._fail(item, one_line(exc), about)
            return
        record = {"line": item.line, "file": item.files[0], "sha256": hashes[0], "seconds": result.get("seconds"),
                  **about, "wall_time": _now()}
        if result.get("load_seconds") is not None:
            record["load_seconds"] = result["load_seconds"]
        if len(item.files) > 1:
            record["candidates"] = [{"file": f, "sha256": h} for f, h in zip(item.files, hashes)]
        record["request"] = result["request"]
        self.ledger.add(record)
        self.summary.made += 1
        self._advance()
        if self.on_record is not None:
            self.on_record(record)

    def _write(self, item: Item, result: dict) -> list[str]:
        import numpy as np

        from ..engine import AudioOutput
        from ..outputs import save
        from ..request import Request

        paths = [self.ledger.folder / name for name in item.files]
        for path in paths:  # left by a run that stopped between writing the file and recording it
            path.unlink(missing_ok=True)
        audios = np.array(result["audios"], dtype=np.float32)  # a copy: Ray hands back read-only arrays
        out = AudioOutput(audios=audios, sample_rate=result["sample_rate"], scores=result.get("scores"),
                          request=Request.from_dict(result["request"]), info=result.get("info") or {})
        save(paths, out, dtype=self.dtype)
        return [sha256_file(path) for path in paths]

    def _fail(self, item: Item, error: str, about: dict) -> None:
        self.ledger.fail({"line": item.line, "error": error, **about, "wall_time": _now(),
                          "request": item.request.to_dict()})
        self.summary.failed += 1
        self._advance()

    def _advance(self) -> None:
        elapsed = time.perf_counter() - self.started
        rate = 60.0 * self.summary.made / elapsed if elapsed > 0 else 0.0
        failed = f", {self.summary.failed} failed" if self.summary.failed else ""
        self.bar.set_postfix_str(f"{rate:.1f} clips/min{failed}", refresh=False)
        self.bar.update(1)


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="batch", unit="clip", file=sys.stderr, disable=not progress, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
                postfix="0.0 clips/min")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
