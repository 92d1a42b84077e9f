"""The worker side of a batch: one process (a local worker or a Ray actor) that loads each model once and runs
lines on it through the engine. Workers compute and return waveforms; only the batch's driver writes files and
records, so the folder has a single writer wherever the workers run.
"""

import os
import socket
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Setup:
    """How a worker runs: its label, device ("cpu", "cuda", "cuda:1" …), dtype, CPU threads (None: torch's
    default), the float32 CPU linear path chosen once for the whole batch (runtime.linear_path; None: decide
    here), and the pipeline options of the CLI."""

    name: str
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    linear_path: str | None = None
    lora: str | None = None
    compile: bool = False
    offload: bool = False
    backend: str = "torch"  # what runs the UNet on the cpu (openvino_unet.BACKENDS)


def one_line(exc: BaseException) -> str:
    """A failure as one line: a soundsmith user error's own message, else the exception's type and message."""
    from ..errors import SoundsmithError

    text = str(exc) if isinstance(exc, SoundsmithError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


class Worker:
    """Runs requests (plain JSON, Request.to_dict) one at a time, keeping the last model loaded. Used as it is in
    a local worker process and as a Ray actor class."""

    def __init__(self, setup: Setup):
        import torch

        self.setup = setup
        if setup.threads:
            torch.set_num_threads(setup.threads)
        if setup.linear_path is not None:
            from .. import runtime

            runtime.set_linear_path(setup.linear_path)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        self.model = self.pipe = None
        self.host, self.pid = socket.gethostname(), os.getpid()

    def ready(self) -> int:
        """The worker's process id, once it is up (Ray: the actor has been placed and constructed)."""
        return self.pid

    def run(self, line: int, request: dict) -> dict:
        """Run one line. → {"ok": True, "audios": float32 (n, samples), "sample_rate", "scores", "request" (as run,
        defaults filled), "seconds" (the engine's), worker fields, "load_seconds" when the model was loaded for it}
        or {"ok": False, "error": one line, worker fields}."""
        from .. import engine
        from ..request import Request

        about = {"line": line, "worker": self.setup.name, "host": self.host, "pid": self.pid}
        started = time.perf_counter()
        try:
            job = Request.from_dict(request)
            pipe, loaded = self._pipe(job.model)
            if loaded:
                about["load_seconds"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            out = engine.run(pipe, job)
        except Exception as exc:  # a failing line is recorded and the batch goes on
            self._recover()
            return {**about, "ok": False, "error": one_line(exc)}
        scores = None if out.scores is None else [float(s) for s in out.scores]
        return {**about, "ok": True, "audios": out.audios, "sample_rate": out.sample_rate, "scores": scores,
                "request": out.request.to_dict(), "info": out.info,
                "seconds": round(time.perf_counter() - started, 3)}

    def _pipe(self, model: str | None):
        """The pipeline of `model` and whether it was loaded just now."""
        if self.pipe is not None and model == self.model:
            return self.pipe, False
        from .. import load, openvino_unet
        from ..checkpoints import default_model

        self.pipe = None  # free the previous model before loading the next
        name = model if model is not None else default_model()[0]
        pipe = load(name, device=self.setup.device, dtype=self.setup.dtype, compile=self.setup.compile,
                    offload=self.setup.offload, progress=False)
        if self.setup.lora is not None:
            pipe.load_lora(self.setup.lora)
        openvino_unet.use_backend(pipe, self.setup.backend)  # after the LoRA: converted with its adapter merged
        self.pipe, self.model = pipe, model
        return self.pipe, True

    def _recover(self) -> None:
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass


def serve(connection, setup: Setup) -> None:
    """A local worker process: (line, request) in, result out, until the driver sends None or goes away. Exits
    without the interpreter's teardown (seconds with torch loaded): the driver holds everything worth keeping."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the driver decides
    worker = Worker(setup)
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            break
        if job is None:
            break
        try:
            connection.send(worker.run(*job))
        except (BrokenPipeError, OSError):
            break
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
