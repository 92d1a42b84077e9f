"""A batch's plan: every line of a jobs file checked and made into an Item before any work starts.

Each Item is fixed by its line alone, so a result never depends on which worker runs it, in what order, or in which
run of a resumed batch:
- seed: the line's own `seed`, else derive_seed(base_seed, line number);
- name: the line's own `name`, else `{line:06d}_{slug of the prompt}` (an audio task without a prompt: the input's
  stem and the task), so a rerun maps each line to the same files;
- model: the line's own `model`, else the batch's (-m), else the default model resolved once for the whole batch;
- input (audio tasks) and the model, ranker and clap folders: made absolute, so a worker with another working folder
  reads the same files.
Defaults (the flags) fill only the fields that apply to a line's task: --steps sets nothing on a reconstruct line.

Line numbers are the jobs file's physical lines (1-based; blank and # lines count), so editing lines above others
changes the numbers, derived seeds and names of the lines below: append new lines at the end of a running batch.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .. import jobs
from ..errors import InvalidArgument
from ..outputs import check_metadata_fits, numbered, slug
from ..request import Request

SEED_RANGE = 2 ** 31  # derived seeds lie below this, like the CLI's fresh seeds
FORMATS = ("wav", "flac")
SHOWN_PROBLEMS = 5  # bad lines quoted in the one-line error (all of them are in BadLines.problems)


class BadLines(InvalidArgument):
    """A jobs file with bad lines: nothing was run. `problems`: one line per bad line, with its number."""

    def __init__(self, path, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        super().__init__(f"{path}: {len(problems)} bad line{'s' if len(problems) > 1 else ''}, nothing was run: "
                         f"{shown}{more}")


@dataclass(frozen=True)
class Item:
    """One line of a batch. `request`: the line over the defaults, seed, name and model fixed; `files`: the names
    of its outputs inside the batch folder, best candidate first."""

    line: int
    request: Request
    files: tuple[str, ...]


def derive_seed(base_seed: int, line: int) -> int:
    """The seed of a line that gives none: the first 8 bytes of SHA-256("soundsmith-batch:{base_seed}:{line}"),
    big-endian, modulo 2^31. The same on every machine and Python version (no hash randomisation)."""
    digest = hashlib.sha256(f"soundsmith-batch:{int(base_seed)}:{int(line)}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % SEED_RANGE


def derive_name(line: int, request: Request) -> str:
    """`{line:06d}_{slug}`: the slug of the prompt, or of the input's stem and the task for an audio task with none."""
    text = request.prompts[0] if request.prompts else f"{Path(request.input or 'sound').stem} {request.task}"
    return f"{line:06d}_{slug(text, limit=40)}"


def plan(path: str | os.PathLike, defaults: dict | None = None, *, base_seed: int = 0, fmt: str = "wav",
         model: str | None = None) -> list[Item]:
    """Every entry of the jobs file `path` (JSON Lines of requests or `prompt|name` text, jobs.py) over `defaults`
    (request fields, e.g. from flags) → Items, in line order. `model` fills lines that name none. Raises BadLines
    listing every bad line (and names used twice) before anything runs."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"format {fmt!r} is not allowed (allowed: {', '.join(FORMATS)})")
    defaults = dict(defaults or {})
    defaults.pop("seed", None)  # a batch's --seed is the base seed, never every line's seed
    entries = jobs.read_lines(path)
    as_json = jobs.is_json_lines(path, entries)
    items, problems, owners = [], [], {}
    for number, text in entries:
        where = f"line {number}"
        try:
            fields = jobs.parse_line(text, as_json, where)
            request = jobs.line_request(fields, defaults, where)
            item = _item(number, request, base_seed, fmt, model)
        except InvalidArgument as exc:
            problems.append(str(exc))
            continue
        clash = [owners[f.casefold()] for f in item.files if f.casefold() in owners]
        if clash:
            problems.append(f"{where}: output name {item.files[0]!r} is already used by line {clash[0]}")
            continue
        owners.update((f.casefold(), number) for f in item.files)
        items.append(item)
    if problems:
        raise BadLines(path, problems)
    return items


def _item(number: int, request: Request, base_seed: int, fmt: str, model: str | None) -> Item:
    where = f"line {number}"
    changes = {}
    if request.seed is None and request.task != "reconstruct":
        changes["seed"] = derive_seed(base_seed, number)
    folders = dict(model=request.model or model, ranker=request.ranker, clap=request.clap)
    for field, value in folders.items():
        if value is not None and os.path.isdir(os.path.expanduser(value)):
            value = os.path.abspath(os.path.expanduser(value))  # the same folder for every worker
        if value != getattr(request, field):
            changes[field] = value
    if request.input is not None:
        changes["input"] = os.path.abspath(os.path.expanduser(request.input))
    if request.name is None:
        changes["name"] = derive_name(number, request)
    request = request.replace(**changes) if changes else request
    files = tuple(p.name for p in numbered(Path(f"{request.name}.{fmt}"), request.candidates))
    try:
        check_metadata_fits(Path(files[0]), request)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc} (--format flac)") from None
    return Item(number, request, files)
