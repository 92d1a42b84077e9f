"""Prompt list files: many sounds from one command.

Two formats, told apart by the extension (.jsonl / .ndjson) or by a first entry starting with "{":
- text, one prompt per line, `prompt|name` naming the output file as the original audioldm2 CLI's list files do;
  blank lines and lines starting with # are skipped;
- JSON Lines, one object per line: {"prompt": …, "negative_prompt": …, "seed": …, "duration": …, "name": …,
  "transcription": …}; only "prompt" is required.
A bad line is an error that names the file and the line number.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgument

FIELDS = {"prompt": str, "negative_prompt": str, "seed": int, "duration": (int, float), "name": str,
          "transcription": str}


@dataclass(frozen=True)
class Job:
    prompt: str
    name: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    duration: float | None = None
    transcription: str | None = None
    line: int = 0


def _check_name(name: str, where: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise InvalidArgument(f"{where}: output name {name!r} is not allowed (a plain file name without folders)")
    return name


def _from_json(text: str, where: str, line: int) -> Job:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where}: expected a JSON object with a \"prompt\", got {type(item).__name__}")
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise InvalidArgument(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(FIELDS)})")
    for key, value in item.items():
        kind = FIELDS[key]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise InvalidArgument(f"{where}: {key}={value!r} has the wrong type")
    prompt = item.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidArgument(f"{where}: \"prompt\" is missing or empty")
    duration = item.get("duration")
    if duration is not None and not duration > 0:
        raise InvalidArgument(f"{where}: duration={duration!r} is not allowed (positive seconds)")
    seed = item.get("seed")
    if seed is not None and not 0 <= seed < 2 ** 63:
        raise InvalidArgument(f"{where}: seed={seed!r} is not allowed (0 to 2^63 − 1)")
    name = item.get("name")
    return Job(prompt=prompt, name=_check_name(name, where) if name is not None else None,
               negative_prompt=item.get("negative_prompt"), seed=seed,
               duration=float(duration) if duration is not None else None,
               transcription=item.get("transcription"), line=line)


def _from_text(text: str, where: str, line: int) -> Job:
    prompt, _, name = text.partition("|")
    if not prompt.strip():
        raise InvalidArgument(f"{where}: the prompt before '|' is empty")
    name = name.strip()
    return Job(prompt=prompt.strip(), name=_check_name(name, where) if name else None, line=line)


def read_prompt_file(path: str | Path) -> list[Job]:
    """Jobs from a prompt list file (see the module docstring)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InvalidArgument(f"prompt file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidArgument(f"prompt file {str(path)!r} is a folder") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"prompt file {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidArgument(f"prompt file {str(path)!r} cannot be read ({exc.strerror})") from None
    entries = [(i, line.strip()) for i, line in enumerate(lines, 1)
               if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise InvalidArgument(f"prompt file {str(path)!r} has no prompts")
    as_json = path.suffix.lower() in (".jsonl", ".ndjson") or entries[0][1].startswith("{")
    parse = _from_json if as_json else _from_text
    jobs = [parse(text, f"{path} line {i}", i) for i, text in entries]
    names = [job.name for job in jobs if job.name]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InvalidArgument(f"prompt file {str(path)!r}: output name {duplicate!r} is used twice")
    return jobs
