"""The one training loop every stage shares: accelerate for devices and processes, AdamW, gradient clipping, an
optional EMA of the weights, atomic resumable checkpoints, a progress bar, a JSON Lines loss log and a pidfile.

Each stage hands over an *objective*: an nn.Module whose forward(batch) returns (loss, {name: float}) so that
DistributedDataParallel wraps the whole computation, and a `batches(step, rank, world) → batch` function.
Randomness is seeded per (seed, step, rank), so a resumed run draws the same batches and noise as an unbroken one.

Files in OUT: checkpoint.pt (step, trainable weights, optimizer, EMA), losses.jsonl (one object per logged step:
step, loss, its parts, lr, seconds), and whatever the stage's `export` writes (the diffusers-layout component).
Run on several processes with `torchrun --nproc_per_node 2 -m soundsmith.cli train …` (accelerate picks up the
torch distributed environment: gloo on CPU, NCCL on GPUs; `accelerate launch --cpu` starts a single process on a
machine without GPUs); --batch is the global batch, split over processes.
"""

import json
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import InvalidArgument

PIDFILE = Path("/tmp/soundsmith-train.pid")


@dataclass
class Schedule:
    steps: int = 1000
    batch: int = 16
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    clip: float = 1.0
    ema: float | None = None   # e.g. 0.999: export the EMA weights
    save_every: int = 500
    log_every: int = 10
    seed: int = 0


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, rename over it: the file is whole or absent."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_component(module: torch.nn.Module, config: dict, folder: Path, weights: str = "diffusion_pytorch_model",
                   dtype: torch.dtype = torch.float32) -> Path:
    """One pipeline component in the diffusers layout: folder/config.json + folder/<weights>.safetensors in `dtype`,
    each written beside its place and renamed over it (a crash leaves the old file or the new, never half)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}
    tmp = folder / f".{weights}.{os.getpid()}.tmp"
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, folder / f"{weights}.safetensors")
    tmp = folder / f".config.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, folder / "config.json")
    return folder


@contextmanager
def pidfile(path: Path | None):
    """Add this process's id as a line of `path` while training, and remove it after: with several runs at once
    the file lists them all, so `kill -STOP $(cat /tmp/soundsmith-train.pid)` pauses every one (-CONT resumes)."""
    if path is None:
        yield
        return
    path, me = Path(path), str(os.getpid())

    def others() -> list[str]:
        try:
            return [pid for pid in path.read_text().split() if pid != me and Path(f"/proc/{pid}").exists()]
        except OSError:
            return []

    path.write_text("".join(f"{pid}\n" for pid in others() + [me]))
    try:
        yield
    finally:
        rest = others()
        try:
            if rest:
                path.write_text("".join(f"{pid}\n" for pid in rest))
            else:
                path.unlink()
        except OSError:
            pass


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % 2**63


def train(objective: torch.nn.Module, batches: Callable[[int, int, int], dict], out: Path, schedule: Schedule, *,
          export: Callable[[torch.nn.Module, Path], None] | None = None, resume: bool = False,
          pidfile_path: Path | None = PIDFILE, progress: bool = True, description: str = "training") -> dict:
    """Train `objective`'s trainable parameters for schedule.steps steps (counting those already done when
    resuming). Returns {"step", "loss", "seconds"} of the last logged step. export(module, out) is called on the
    main process after every checkpoint, with the EMA weights swapped in when schedule.ema is set."""
    from accelerate import Accelerator
    from tqdm import tqdm

    out = Path(out)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    if schedule.batch % world:
        raise ValueError(f"--batch {schedule.batch} is not divisible by the {world} processes")
    if main:
        out.mkdir(parents=True, exist_ok=True)
    params = [p for p in objective.parameters() if p.requires_grad]
    names = [n for n, p in objective.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    ema = [p.detach().clone() for p in params] if schedule.ema else None
    start = 0
    checkpoint_file = out / "checkpoint.pt"
    if resume and checkpoint_file.exists():
        state = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
        current = dict(objective.named_parameters())
        with torch.no_grad():
            for name in names:
                current[name].copy_(state["weights"][name])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema = [t.clone() for t in state["ema"]]
        start = state["step"]
        if main:
            print(f"resuming {description} from step {start} ({checkpoint_file})", flush=True)
    model, optimizer = accelerator.prepare(objective, optimizer)

    def save(step: int) -> None:
        if not main:
            return
        weights = {n: p.detach().cpu() for n, p in zip(names, params)}
        atomic_save({"step": step, "weights": weights, "optimizer": optimizer.state_dict(),
                     "ema": [t.cpu() for t in ema] if ema is not None else None}, checkpoint_file)
        if export is not None:
            with _swapped(params, ema):
                export(objective, out)

    log = open(out / "losses.jsonl", "a") if main else None
    bar = tqdm(total=schedule.steps, initial=start, desc=description, disable=not (main and progress),
               mininterval=5, dynamic_ncols=True)
    began, last = time.time(), {"step": start, "loss": None, "seconds": 0.0}
    running: dict[str, float] = {}
    model.train()
    step = done = start
    try:
        with pidfile(pidfile_path if main else None):
            for step in range(start, schedule.steps):
                torch.manual_seed(step_seed(schedule.seed, step, rank))
                lr = schedule.lr * min(1.0, (step + 1) / max(1, schedule.warmup))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = batches(step, rank, world)
                loss, parts = model(batch)
                accelerator.backward(loss)
                if schedule.clip:
                    accelerator.clip_grad_norm_(params, schedule.clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                done = step + 1
                if ema is not None:  # decay warms up as (1 + t) / (10 + t), as diffusers' EMAModel does
                    decay = min(schedule.ema, (1 + step) / (10 + step))
                    with torch.no_grad():
                        torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
                for k, v in {"loss": float(loss.detach()), **parts}.items():
                    running[k] = running.get(k, 0.0) + v
                if (step + 1) % schedule.log_every == 0 or step + 1 == schedule.steps:
                    count = (step % schedule.log_every) + 1
                    means = torch.tensor([v / count for v in running.values()], device=accelerator.device)
                    means = accelerator.reduce(means, reduction="mean")
                    row = {"step": step + 1, **{k: round(float(v), 6) for k, v in zip(running, means)},
                           "lr": lr, "seconds": round(time.time() - began, 2), "processes": world}
                    running = {}
                    last = {"step": step + 1, "loss": row["loss"], "seconds": row["seconds"]}
                    if log is not None:
                        log.write(json.dumps(row) + "\n")
                        log.flush()
                    bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
                bar.update(1)
                if (step + 1) % schedule.save_every == 0 and step + 1 < schedule.steps:
                    save(step + 1)
            step = schedule.steps
            save(step)
    except KeyboardInterrupt:
        if world == 1:
            save(done)
            print(f"\ninterrupted: saved step {done} to {checkpoint_file}; continue with --resume", flush=True)
        raise
    finally:
        bar.close()
        if log is not None:
            log.close()
    accelerator.wait_for_everyone()
    return last


@contextmanager
def _swapped(params: list[torch.Tensor], ema: list[torch.Tensor] | None):
    if ema is None:
        yield
        return
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so a terminated run still saves its checkpoint."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))


# ---- the command-line stages' shared wiring (train/cli.py, train/finetune.py) -----------------------------------

def schedule_from_args(args) -> Schedule:
    """The Schedule of a `soundsmith train …` / `finetune` run from its parsed flags (checked), with the thread count
    applied and SIGTERM turned into a clean stop."""
    for name in ("steps", "batch", "save_every"):
        if getattr(args, name, 1) < 1:
            raise InvalidArgument(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    stop_on_sigterm()
    return Schedule(steps=args.steps, batch=args.batch, lr=args.lr, save_every=args.save_every, seed=args.seed)


def train_from_args(objective, batches, args, schedule: Schedule, export, description: str) -> int:
    """`train` with the flags of a command-line run; prints the outcome once (rank 0). Exit status 0."""
    result = train(objective, batches, Path(args.out), schedule, export=export, resume=args.resume,
                   pidfile_path=Path(args.pidfile) if args.pidfile else None, progress=not args.no_progress,
                   description=description)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{description}: step {result['step']}, loss {result['loss']}, {result['seconds']} s → {args.out}")
    return 0
