"""`soundsmith data synth`: a captioned dataset made on this machine, as 16-bit mono WAVs and a manifest.

    soundsmith data synth --out ~/.cache/soundsmith/data/synth-10k --n 10000 --sample-rate 22050

Clip i of a dataset depends only on (seed, i, seconds, sample rate) and the installed packages: re-running the
same command skips the clips already written (each WAV appears whole or not at all) and rewrites the manifest, so an
interrupted run resumes, and a larger --n extends a smaller dataset.
"""

import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..errors import InvalidArgument, SoundsmithError
from . import kinds
from .manifest import MANIFEST_NAME, manifest_line

SETTINGS_NAME = "synth.json"
INSTALL_HINT = "run scripts/install-data-deps (as root) to install them"


class MissingDependency(SoundsmithError):
    """A Debian package that synthesis needs is not installed."""


def wav_name(index: int) -> str:
    """Relative path of clip `index`: wav/000/000017.wav (a thousand a folder)."""
    return f"wav/{index // 1000:03d}/{index:06d}.wav"


def synthesize(out: str | os.PathLike, n: int, seed: int = 0, sample_rate: int = 16000, seconds: float = 5.0,
               jobs: int = 2, progress: bool = True) -> Path:
    """Make clips 0 … n-1 of the dataset for `seed` in folder `out`; returns the manifest's path.
    sample_rate in Hz, seconds per clip; jobs = worker processes."""
    if n < 1:
        raise InvalidArgument(f"--n {n}: must be at least 1")
    if not 8000 <= sample_rate <= 48000:
        raise InvalidArgument(f"--sample-rate {sample_rate}: must be between 8000 and 48000 Hz")
    if not 1.0 <= seconds <= 30.0:
        raise InvalidArgument(f"--seconds {seconds}: must be between 1 and 30")
    if jobs < 1:
        raise InvalidArgument(f"--jobs {jobs}: must be at least 1")
    check_dependencies()
    out = Path(out).expanduser()
    _check_settings(out, dict(seed=seed, sample_rate=sample_rate, seconds=seconds,
                              soundfont=os.path.basename(kinds.music.find_soundfont())))
    for folder in sorted({wav_name(i).rsplit("/", 1)[0] for i in range(n)}):
        (out / folder).mkdir(parents=True, exist_ok=True)

    args = [(out, seed, i, sample_rate, seconds) for i in range(n)]
    records, started = [None] * n, time.perf_counter()
    if jobs == 1:
        _worker_init()
        results = map(_make_clip, args)
        records = _collect(results, records, n, started, progress)
    else:
        context = multiprocessing.get_context("spawn")  # torch and OpenMP are not fork-safe
        with context.Pool(jobs, initializer=_worker_init) as pool:
            records = _collect(pool.imap_unordered(_make_clip, args, chunksize=8), records, n, started, progress)
    manifest = out / MANIFEST_NAME
    _write_text(manifest, "".join(manifest_line(r) + "\n" for r in records))
    if progress:
        counts = Counter(r["category"] for r in records)
        mix = ", ".join(f"{c} {100 * k / n:.0f}%" for c, k in counts.most_common())
        print(f"{n} clips in {time.perf_counter() - started:.0f} s; categories: {mix}", file=sys.stderr)
    return manifest


def check_dependencies() -> None:
    from .sources import missing

    absent = missing()
    if absent:
        raise MissingDependency(f"synthesis needs the Debian packages {', '.join(absent)}: {INSTALL_HINT}")


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS_NAME
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            diff = ", ".join(f"{k}={old.get(k)!r}" for k in settings if old.get(k) != settings[k])
            raise InvalidArgument(f"{out} holds a dataset made with {diff}: choose another --out or the same settings")
    elif out.exists() and any(out.iterdir()):
        raise InvalidArgument(f"{out} exists and is not a soundsmith dataset (no {SETTINGS_NAME}): choose another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        _write_text(path, json.dumps(settings, indent=1) + "\n")


def _collect(results, records: list, n: int, started: float, progress: bool) -> list:
    from tqdm import tqdm

    for index, record in tqdm(results, total=n, disable=not progress, unit="clip", file=sys.stderr):
        records[index] = record
    return records


_TMPDIR = None


def _worker_init() -> None:
    global _TMPDIR
    import torch

    torch.set_num_threads(1)
    _TMPDIR = tempfile.mkdtemp(prefix="soundsmith-synth-")


def _make_clip(args) -> tuple[int, dict]:
    """Plan clip `index`, render and write it unless its WAV exists; → (index, manifest record)."""
    import numpy as np

    from ..audio import write

    out, seed, index, sample_rate, seconds = args
    soundfont = kinds.music.find_soundfont()
    recipe = kinds.plan(seed, index, seconds, soundfont)
    wav = wav_name(index)
    if not (out / wav).is_file():
        ctx = kinds.Context(sample_rate, round(seconds * sample_rate), _TMPDIR, soundfont,
                            np.random.default_rng([seed, index, 1]))
        waveform = kinds.render(recipe, ctx)
        write(out / wav, waveform, sample_rate, {"caption": recipe["caption"], "category": recipe["category"]})
    return index, {"wav": wav, "caption": recipe["caption"], "category": recipe["category"],
                   "source": recipe["source"], "licence": recipe["licence"]}


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def cmd_synth(args) -> int:
    print(synthesize(args.out, args.n, seed=args.seed, sample_rate=args.sample_rate, seconds=args.seconds,
                     jobs=args.jobs))
    return 0
