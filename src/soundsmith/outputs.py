"""Where results go and what they carry: output names planned before any work, and files written with the request
that made them in their metadata (so `soundsmith generate --from FILE` makes the same sound again).

Used by the CLI, batch jobs and the service. Names never collide: a planned name is neither an existing file nor
one planned earlier in the same run; planning N names is linear in N.
"""

import json
import os
import tempfile
import warnings
from pathlib import Path

from .audio import WAV_COMMENT_LIMIT, write
from .errors import InvalidArgument, OutputExists, SoundsmithWarning

AUDIO_SUFFIXES = (".wav", ".flac")
METADATA_MARGIN = 700  # characters metadata takes beyond the request (version, candidate, score, model defaults,
#                        the loudness record)
NAME_BYTES = 200  # longest stem planned from a prompt or given (file systems allow 255 bytes per name)


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe stem from a prompt: 'A dog, barking!' → 'a_dog_barking'."""
    word = "".join(c if c.isalnum() else "_" for c in text.lower())
    stem = "_".join(w for w in word.split("_") if w)[:limit].rstrip("_")
    return stem or "sound"


def numbered(base: Path, n: int) -> list[Path]:
    """OUT for one candidate, OUT_1 … OUT_n (best first) for several."""
    if n == 1:
        return [base]
    return [base.with_name(f"{base.stem}_{i}{base.suffix}") for i in range(1, n + 1)]


class Planner:
    """Plans output paths for a run: explicit names (refused when they exist, unless force) and names made from
    prompts (numbered -2, -3 … past existing files and names planned earlier), each checked writable once per
    folder. Remembers the next free number per name, so planning is linear in the number of jobs."""

    def __init__(self, force: bool = False):
        self.force = force
        self.taken: set[Path] = set()
        self.next_number: dict[Path, int] = {}
        self.checked: set[Path] = set()

    def explicit(self, out: str | os.PathLike, n: int = 1) -> list[Path]:
        base = Path(out).expanduser()
        if base.suffix.lower() not in AUDIO_SUFFIXES:
            raise InvalidArgument(f"output {str(out)!r} has an unsupported extension (allowed: "
                                  f"{', '.join(AUDIO_SUFFIXES)})")
        _check_length(base)
        paths = numbered(base, n)
        for p in paths:
            if p.is_dir():
                raise InvalidArgument(f"output {str(p)!r} is a folder: give a file name")
            if p in self.taken:
                raise InvalidArgument(f"output {str(p)!r} is planned twice in this run")
        existing = [str(p) for p in paths if p.exists() or p.is_symlink()]
        if existing and not self.force:
            raise InvalidArgument(f"output {existing[0]!r} already exists: choose another -o or pass --force to "
                                  f"overwrite")
        return self._take(paths)

    def from_prompt(self, prompt: str, n: int = 1, folder: str | os.PathLike = ".", suffix: str = ".wav") -> list[Path]:
        base = Path(folder).expanduser() / (slug(prompt) + suffix)
        k = self.next_number.get(base, 1)
        while True:
            candidate = base if k == 1 else base.with_name(f"{base.stem}-{k}{base.suffix}")
            paths = numbered(candidate, n)
            if not any(p in self.taken or p.exists() or p.is_symlink() for p in paths):
                break
            k += 1
        self.next_number[base] = k + 1
        return self._take(paths)

    def _take(self, paths: list[Path]) -> list[Path]:
        folder = paths[0].parent
        if folder not in self.checked:
            check_writable(folder)
            self.checked.add(folder)
        self.taken.update(paths)
        return paths


def _check_length(path: Path) -> None:
    """A name the file system takes: no NUL, at most 255 bytes with a candidate number added."""
    if "\0" in str(path):
        raise InvalidArgument(f"output {str(path)!r} contains a NUL character: give a plain file name")
    try:
        size = max(len(os.fsencode(p.name)) for p in numbered(path, 2))
    except UnicodeEncodeError:
        raise InvalidArgument(f"output {str(path)!r} is not a file name this system can encode (it holds a lone "
                              f"surrogate)") from None
    if size > 255:
        raise InvalidArgument(f"output name {path.name[:40]!r}… takes {size} bytes with a candidate number: the file "
                              f"system allows 255 per name")


def check_writable(folder: Path) -> None:
    """The folder exists and takes files, or the nearest existing folder above it does (it is created when the
    first file is written, so a run that fails leaves no empty folder behind)."""
    folder = Path(folder) if str(folder) else Path(".")
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InvalidArgument(f"output folder {str(folder)!r} cannot be created: {str(probe)!r} is not a folder")
    try:  # a real probe: os.access says yes to root even on read-only or special file systems
        tempfile.NamedTemporaryFile(dir=probe, prefix=".soundsmith-probe-").close()
    except OSError as exc:
        raise InvalidArgument(f"output folder {str(folder)!r} is not writable ({exc.strerror})") from None


def metadata(request, **extra) -> dict:
    """What a file stores: the request as run (request.to_dict()), `command` (its task), and `extra` (soundsmith's
    version, dtype, candidate number, CLAP score, loudness applied …)."""
    return {**request.to_dict(), "command": request.task, **{k: v for k, v in extra.items() if v is not None}}


def check_metadata_fits(path: Path, request) -> None:
    """A WAV comment holds WAV_COMMENT_LIMIT characters: refuse before any work when the request cannot fit."""
    size = len(json.dumps(metadata(request), ensure_ascii=True))
    if Path(path).suffix.lower() == ".wav" and size + METADATA_MARGIN > WAV_COMMENT_LIMIT:
        raise InvalidArgument(f"the prompt is too long to store in a WAV file's metadata ({size} characters): "
                              f"write .flac instead")


def save(paths: list[Path], out, *, overwrite: bool = False, progress: bool = False, **extra) -> list[Path]:
    """Write each waveform of an engine result (out.audios (n, samples)) to its path, with the request it was made
    by, what loudness normalisation did to it (out.info["loudness"]: LoudnessRecord.as_metadata) and `extra` in its
    metadata; the folder is created when missing. A path that exists by the time its file is complete — one that
    appeared during the run — is never replaced unless `overwrite`: the new file takes the next free numbered name
    instead, with a warning. progress: a "writing" line on stderr. Returns the paths written."""
    from . import __version__
    from .progress import stage

    paths = list(paths)
    records = (out.info or {}).get("loudness")
    with stage(f"writing {paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else ""), progress):
        for i, (path, waveform) in enumerate(zip(paths, out.audios)):
            meta = metadata(out.request, soundsmith=__version__, **extra)
            if len(paths) > 1:
                meta["candidate"] = i + 1
            if out.scores is not None:
                meta["clap_score"] = round(float(out.scores[i]), 6)
            if records:
                meta.update(records[i].as_metadata())
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            paths[i] = _write_somewhere(Path(path), waveform, out.sample_rate, meta, overwrite)
    return paths


def _write_somewhere(path: Path, waveform, sample_rate: int, meta: dict, overwrite: bool) -> Path:
    """Write to `path`; when a file took that name while the run was under way, keep both: ours goes to the first
    free PATH-2, PATH-3 … and a warning says so."""
    for k in range(1, 1000):
        target = path if k == 1 else path.with_name(f"{path.stem}-{k}{path.suffix}")
        try:
            write(target, waveform, sample_rate, meta, overwrite=overwrite and k == 1)
        except OutputExists:
            continue
        if k > 1:
            warnings.warn(f"{path} appeared while this run was under way and is kept; the new sound is {target}",
                          SoundsmithWarning, stacklevel=3)
        return target
    raise OutputExists(f"{path}: it and 998 numbered variants exist; choose another output")
