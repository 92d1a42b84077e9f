"""Warm pipelines and the workers that run jobs on them.

- `Pipelines`: each served model is loaded on first use and kept; when loading one more would pass the memory
  budget, the least recently used idle one is unloaded first. A pipeline runs one job at a time.
- `Workers`: N threads; each claims the oldest queued job from the store, runs it through the engine
  (engine.run, the same engine as every other door), writes its files atomically (outputs.save) and only then
  marks it succeeded. The engine's per-step callback reports progress and stops a job at its next step when it
  is cancelled (or when the service shuts down: the job stays `running` in the store and runs again at the next
  start, as after a kill -9).

Files of job J: `DATA/jobs/J/0.wav`, `1.wav` … in the order of the result (best candidate first). A job that runs
again starts from an empty folder, so each output exists exactly once.
"""

import gc
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

from .. import engine
from ..errors import SoundsmithError
from ..request import AUDIO_TASKS, Request
from . import uploads
from .catalog import Model
from .config import Settings
from .metrics import Metrics
from .store import Job, Store

log = logging.getLogger("soundsmith.serve")
DENOISE_SHARE = 0.9  # progress the sampler steps account for; decoding and writing the files the rest


class Stopped(Exception):
    """Raised inside the engine's callback to stop a job: it was cancelled, or the service is shutting down."""


class Pipelines:
    """Loaded pipelines by served name, least recently used first, under `budget_bytes` of weights (None: no
    limit). `use(name)` holds the pipeline for one job."""

    def __init__(self, models: dict[str, Model], device: str, dtype: str, budget_bytes: int | None,
                 backend: str = "torch"):
        self.models, self.device, self.dtype, self.budget = models, device, dtype, budget_bytes
        self.backend = backend  # what runs the UNet (openvino_unet.BACKENDS)
        self.loaded: OrderedDict[str, object] = OrderedDict()
        self.sizes: dict[str, int] = {}
        self.busy: set[str] = set()
        self._lock = threading.Condition()

    @contextmanager
    def use(self, name: str):
        with self._lock:
            while name in self.busy:
                self._lock.wait()
            self.busy.add(name)
        try:
            yield self._get(name)
        finally:
            with self._lock:
                self.busy.discard(name)
                self._lock.notify_all()

    def is_loaded(self, name: str) -> bool:
        return name in self.loaded

    def _get(self, name: str):
        with self._lock:
            if name in self.loaded:
                self.loaded.move_to_end(name)
                return self.loaded[name]
            self._make_room(weights_bytes(self.models[name].folder, self.dtype))
        from .. import load

        log.info("loading %s from %s", name, self.models[name].folder)
        pipe = load(str(self.models[name].folder), device=self.device, dtype=self.dtype, progress=False,
                    backend=self.backend)
        pipe.name = name
        with self._lock:
            self.loaded[name] = pipe
            self.sizes[name] = pipeline_bytes(pipe)
        return pipe

    def _make_room(self, needed: int) -> None:
        if self.budget is None:
            return
        for other in list(self.loaded):
            if sum(self.sizes.values()) + needed <= self.budget:
                break
            if other in self.busy:
                continue
            log.info("unloading %s (memory budget %.1f GB)", other, self.budget / 1e9)
            del self.loaded[other], self.sizes[other]
            gc.collect()


def weights_bytes(folder: Path, dtype: str) -> int:
    """Bytes a folder's weights take once loaded (their size on disk, halved for 16-bit dtypes)."""
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())
    return size // 2 if dtype in ("bfloat16", "float16") else size


def pipeline_bytes(pipe) -> int:
    """Bytes of every parameter and buffer of a loaded pipeline's networks."""
    seen, total = set(), 0
    for module in pipe.modules().values():
        if module is None:
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


class Workers:
    """`settings.workers` threads running queued jobs; `wake()` after a submit, `cancel(id)` for a running job."""

    def __init__(self, settings: Settings, store: Store, models: dict[str, Model], metrics: Metrics):
        self.settings, self.store, self.models, self.metrics = settings, store, models, metrics
        self.data = settings.data_folder
        budget = settings.memory_budget_gb
        self.pipelines = Pipelines(models, settings.device, settings.dtype,
                                   None if budget is None else int(budget * 1e9), settings.backend)
        self.progress: dict[str, float] = {}  # running jobs → 0..1
        self.cancelled: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the workers, and load the default model in the background so the first job finds it warm."""
        threading.Thread(target=self._preload, name="soundsmith-preload", daemon=True).start()
        for i in range(self.settings.workers):
            thread = threading.Thread(target=self._loop, name=f"soundsmith-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _preload(self) -> None:
        name = next(iter(self.models))
        try:
            with self.pipelines.use(name):
                pass
        except Exception:  # jobs on this model will fail with the loading error's one line
            log.exception("could not load %s", name)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current step of each running job (those jobs stay `running`: they run again at the next
        start)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """Stop a job that was running at its next step (its store row says cancelled already)."""
        self.cancelled.add(job_id)

    @property
    def busy(self) -> int:
        return len(self.progress)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._wake.set()  # another worker may take the next one
            self.run(job)

    def run(self, job: Job) -> None:
        """Run one claimed job to its end: succeeded, failed, cancelled, or left running by a shutdown."""
        started = time.perf_counter()
        self.progress[job.id] = 0.0
        folder = self.data / "jobs" / job.id
        try:
            if folder.exists():  # an earlier attempt's files (a restart): start clean
                shutil.rmtree(folder)
            for name in (job.request["model"], job.request.get("ranker")):
                if name is not None and name not in self.models:  # queued before a restart with other --models
                    raise SoundsmithError(f"model {name!r} is no longer served here (served: {', '.join(self.models)})")
            with self.pipelines.use(job.request["model"]) as pipe:
                out = self._generate(job, pipe)
            if self._stopping(job.id):
                raise Stopped
            paths = [folder / f"{i}.wav" for i in range(len(out.audios))]
            from ..outputs import save

            save(paths, out, dtype=self.settings.dtype)
            outputs = [{"seconds": len(a) / out.sample_rate, "sample_rate": out.sample_rate,
                        "score": None if out.scores is None else round(float(out.scores[i]), 6)}
                       for i, a in enumerate(out.audios)]
            if self.store.succeed(job.id, outputs, out.request.to_dict()):
                self.metrics.finished("succeeded", time.perf_counter() - started)
            else:  # cancelled while its files were written
                shutil.rmtree(folder, ignore_errors=True)
        except Stopped:
            if job.id in self.cancelled:
                self.store.record_progress(job.id, self.progress.get(job.id, 0.0))
                shutil.rmtree(folder, ignore_errors=True)
                self.metrics.finished("cancelled", time.perf_counter() - started)
        except SoundsmithError as exc:
            self._fail(job, str(exc).splitlines()[0], started)
        except Exception as exc:  # a bug: the job fails with one line, the log keeps the traceback
            log.exception("job %s failed", job.id)
            self._fail(job, f"internal error ({type(exc).__name__}): see the server log", started)
        finally:
            self.progress.pop(job.id, None)
            self.cancelled.discard(job.id)

    def _generate(self, job: Job, pipe):
        request = Request.from_dict(job.request)
        resolved = engine.resolve(pipe, request)
        expected = resolved.steps or 1  # sampler steps this job runs (transfer starts part-way: strength · steps)
        if request.task == "transfer":
            expected = max(1, int(expected * (0.5 if resolved.strength is None else resolved.strength)))
        calls = 0

        def step(i, t, latents):
            nonlocal calls
            if self._stopping(job.id):
                raise Stopped
            calls += 1
            self.progress[job.id] = min(calls / expected, 1.0) * DENOISE_SHARE

        if self._stopping(job.id):
            raise Stopped
        extra = {}
        if request.task in AUDIO_TASKS:
            upload = self.store.get_upload(request.input)
            if upload is None:
                raise SoundsmithError(f"input {request.input} is no longer stored")
            from ..audio import read

            extra.update(audio=read(uploads.path_of(self.data, upload), pipe.sample_rate), sample_rate=pipe.sample_rate)
        if request.ranker is not None:
            extra["ranker"] = str(self.models[request.ranker].folder)
        if request.clap is not None:  # vary: a served model's CLAP, by name (admission)
            request = request.replace(clap=str(self.models[request.clap].folder))
        return engine.run(pipe, request, callback=step, **extra)

    def _stopping(self, job_id: str) -> bool:
        return self._stop.is_set() or job_id in self.cancelled

    def _fail(self, job: Job, error: str, started: float) -> None:
        if self.store.fail(job.id, error, self.progress.get(job.id)):
            self.metrics.finished("failed", time.perf_counter() - started)


def pin_cpu_linear_path(data: Path) -> str:
    """The float32 CPU matrix-product path (runtime.linear_path: measured per process, and a close call can go
    either way under load) decided once per data folder and kept in DATA/runtime.json, so a job run again after a
    restart takes the same path and makes the same samples. SOUNDSMITH_CPU_LINEAR, when set, wins."""
    from .. import runtime

    if os.environ.get("SOUNDSMITH_CPU_LINEAR"):
        return runtime.linear_path()
    record = data / "runtime.json"
    try:
        path = json.loads(record.read_text()).get("cpu_linear")
    except (OSError, ValueError, AttributeError):
        path = None
    if path in ("onednn", "blas"):
        runtime.set_linear_path(path)
        return path
    path = runtime.linear_path()
    temporary = record.with_name(f".runtime.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"cpu_linear": path}))
    os.replace(temporary, record)
    return path
