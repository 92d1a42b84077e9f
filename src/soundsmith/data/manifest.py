"""Datasets as JSON Lines manifests: one (audio, caption) pair a line, AudioCaps-like.

    {"wav": "wav/000/000017.wav", "caption": "a dog barking with rain in the background",
     "category": "animal", "source": "scratch:Animal/Dog1.wav", "licence": "CC-BY-SA-3.0"}

`wav` is relative to the manifest's folder (or absolute); `caption` is required; `category` (one of
eval_prompts.CATEGORIES or "other"), `source` and `licence` are optional. Other keys are kept in Item.extra.
Every problem is one ManifestError line naming the manifest, the line number and what is wrong.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import soundfile
import torch

from ..errors import SoundsmithError

MANIFEST_NAME = "manifest.jsonl"  # the file `soundsmith data synth` writes in its --out folder
KNOWN_KEYS = ("wav", "caption", "category", "source", "licence")


class ManifestError(SoundsmithError):
    """A manifest that is missing, empty or malformed, or names audio that is missing or unreadable."""


@dataclass(frozen=True)
class Item:
    """One line of a manifest: an audio file (absolute path) and its caption."""

    wav: Path
    caption: str
    category: str | None = None
    source: str | None = None
    licence: str | None = None
    line: int = 0  # 1-based line number in the manifest, for error messages
    manifest: Path | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def where(self) -> str:
        """'path/manifest.jsonl line 12' (or the wav path when the item did not come from a manifest)."""
        return f"{self.manifest} line {self.line}" if self.manifest else str(self.wav)


def read_manifest(path: str | os.PathLike, check_audio: bool = True) -> list[Item]:
    """The items of a JSON Lines manifest, in file order. Blank lines are skipped.

    check_audio=True also checks that every wav exists and that its header reads as audio (soundfile.info, a few
    microseconds a file; a file that is corrupt past its header fails later in load_audio, with the same kind of
    message)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder, not a manifest file" if path.is_dir() else "no such file"
        raise ManifestError(f"{path}: {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    items = []
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            items.append(_parse_line(raw, path, number))
    if not items:
        raise ManifestError(f"{path}: empty manifest (no lines with a wav and a caption)")
    if check_audio:
        for item in items:
            check_readable(item)
    return items


def _parse_line(raw: str, path: Path, number: int) -> Item:
    where = f"{path} line {number}"
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected a JSON object with 'wav' and 'caption', got {type(record).__name__}")
    for key in ("wav", "caption"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            got = "missing" if key not in record else f"{record[key]!r}"
            raise ManifestError(f"{where}: '{key}' must be a non-empty string ({got})")
    for key in ("category", "source", "licence"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise ManifestError(f"{where}: '{key}' must be a string or null ({record[key]!r})")
    wav = Path(record["wav"]).expanduser()
    wav = wav if wav.is_absolute() else path.parent / wav
    return Item(wav=wav, caption=record["caption"].strip(), category=record.get("category"),
                source=record.get("source"), licence=record.get("licence"), line=number, manifest=path,
                extra={k: v for k, v in record.items() if k not in KNOWN_KEYS})


def check_readable(item: Item) -> None:
    """ManifestError unless item.wav exists and its header reads as audio with at least one sample."""
    if not item.wav.is_file():
        what = "is a folder" if item.wav.is_dir() else "does not exist"
        raise ManifestError(f"{item.where}: audio file {item.wav} {what}")
    try:
        info = soundfile.info(str(item.wav))
    except Exception as e:  # libsndfile reports corrupt or foreign files with several exception types
        raise ManifestError(f"{item.where}: unreadable audio {item.wav} ({_detail(e)})") from None
    if info.frames == 0:
        raise ManifestError(f"{item.where}: audio file {item.wav} contains no samples")


def load_audio(item: Item, sample_rate: int) -> torch.Tensor:
    """item's audio as (samples,) float32 mono at sample_rate Hz (soundsmith.audio.read); a missing or corrupt
    file raises ManifestError naming the manifest line."""
    from ..audio import read

    try:
        return read(item.wav, sample_rate)
    except SoundsmithError as e:
        raise ManifestError(f"{item.where}: {e}") from None


def manifest_line(record: dict) -> str:
    """One manifest line (no newline) from a dict with at least wav and caption; keys in KNOWN_KEYS order first."""
    ordered = {k: record[k] for k in KNOWN_KEYS if k in record}
    ordered.update({k: v for k, v in record.items() if k not in ordered})
    return json.dumps(ordered, ensure_ascii=False)


def _detail(e: Exception) -> str:
    return " ".join(str(getattr(e, "error_string", None) or e).split())
