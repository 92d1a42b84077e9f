"""Prompt list files: many requests from one file (`soundsmith generate --prompts`, `soundsmith batch`).

Two formats, told apart by the extension (.jsonl / .ndjson) or by a first entry starting with "{":
- text, one prompt per line, `prompt|name` naming the output file as the original audioldm2 CLI's list files do;
- JSON Lines, one request per line (soundsmith.Request's JSON: {"prompt": …, "negative_prompt": …, "seed": …,
  "duration": …, "name": …, "transcription": …, "steps": …, "task": …, …}); only what differs from the defaults
  is needed.
Blank lines and lines starting with # are skipped. Every line is checked before anything runs; a bad line is an
error that names the file and the line number.
"""

import json
from pathlib import Path

from .errors import InvalidArgument
from .request import TASK_FIELDS, TASK_SPECIFIC, Request


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, text) of the entries of a prompt file: not blank, not a # comment."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise InvalidArgument(f"prompt file {str(path)!r} is {'a folder' if path.is_dir() else 'not a regular file'}")
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InvalidArgument(f"prompt file {str(path)!r} does not exist") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"prompt file {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidArgument(f"prompt file {str(path)!r} cannot be read ({exc.strerror})") from None
    entries = [(i, line.strip()) for i, line in enumerate(lines, 1)
               if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise InvalidArgument(f"prompt file {str(path)!r} has no prompts")
    return entries


def parse_line(text: str, as_json: bool, where: str) -> dict:
    """One entry → the request fields it sets."""
    if not as_json:
        prompt, _, name = text.partition("|")
        if not prompt.strip():
            raise InvalidArgument(f"{where}: the prompt before '|' is empty")
        fields = {"prompt": prompt.strip()}
        if name.strip():
            fields["name"] = name.strip()
        return fields
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where}: expected a JSON object with a \"prompt\", got {type(item).__name__}")
    return item


def is_json_lines(path: str | Path, entries: list[tuple[int, str]]) -> bool:
    """Whether a prompt file is JSON Lines: by its extension (.jsonl / .ndjson) or a first entry starting with "{"."""
    return Path(path).suffix.lower() in (".jsonl", ".ndjson") or entries[0][1].startswith("{")


def line_request(fields: dict, defaults: dict, where: str, labels: dict | None = None) -> Request:
    """One line's request: its fields over the `defaults` that apply to its task (a flag such as --steps sets nothing
    on a reconstruct line), one prompt per line."""
    task = fields.get("task", defaults.get("task", "generate"))
    if isinstance(task, str) and task in TASK_FIELDS:  # any other value is Request's to refuse, naming the field
        defaults = {k: v for k, v in defaults.items() if k not in TASK_SPECIFIC or k in TASK_FIELDS[task]}
    request = Request.from_dict({**defaults, **fields}, labels=labels, where=f"{where}: ")
    if request.prompts is not None and len(request.prompts) > 1:
        raise InvalidArgument(f"{where}: {len(request.prompts)} prompts in one line: give one prompt per line")
    return request


def read_prompt_file(path: str | Path, defaults: dict | None = None, labels: dict | None = None) -> list[Request]:
    """The requests of a prompt list file, each line's fields over `defaults` (request fields, e.g. from flags).
    Names must be plain file names, used once."""
    entries = read_lines(path)
    as_json = is_json_lines(path, entries)
    requests, names = [], set()
    for number, text in entries:
        where = f"{path} line {number}"
        request = line_request(parse_line(text, as_json, where), defaults or {}, where, labels)
        if request.name is not None:
            if request.name in names:
                raise InvalidArgument(f"prompt file {str(path)!r}: output name {request.name!r} is used twice")
            names.add(request.name)
        requests.append(request)
    return requests
