"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers user text goes through: a request's JSON
(Request.from_dict, as the service and batch read it) and prompt list files (jobs.read_prompt_file, text and JSON
Lines). A finding is any exception other than InvalidArgument; each is printed once with its input.

    pip install atheris
    python scripts/fuzz_requests.py -atheris_runs=200000           # or -max_total_time=300
"""

import io
import json
import os
import sys
import tempfile
import traceback

import atheris

with atheris.instrument_imports():
    from soundsmith import InvalidArgument, Request
    from soundsmith import checks, jobs, request  # noqa: F401 (instrumented for coverage)

FOLDER = tempfile.mkdtemp(prefix="soundsmith-fuzz-")
SEEN: set[str] = set()
FINDINGS = []


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    mode = provider.ConsumeIntInRange(0, 2)
    body = provider.ConsumeBytes(provider.remaining_bytes())
    try:
        if mode == 0:
            try:
                value = json.loads(body.decode("utf-8", "surrogatepass"))
            except (ValueError, RecursionError):
                return
            Request.from_dict(value)
        else:
            path = os.path.join(FOLDER, "jobs.jsonl" if mode == 1 else "jobs.txt")
            with open(path, "wb") as f:
                f.write(body)
            jobs.read_prompt_file(path)
    except InvalidArgument as exc:
        if "\n" in str(exc):
            _finding(body, exc)
    except Exception as exc:  # noqa: BLE001 — every other exception is a finding
        _finding(body, exc)


def _finding(body: bytes, exc: BaseException) -> None:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    key = f"{type(exc).__name__} at {where.filename}:{where.lineno}"
    if key not in SEEN:
        SEEN.add(key)
        FINDINGS.append(key)
        print(f"FINDING {key}: {exc!r} on {body[:200]!r}", file=sys.stderr, flush=True)


def main() -> None:
    import atexit

    atexit.register(lambda: print(f"fuzz_requests: {len(FINDINGS)} distinct finding(s)", file=sys.stderr))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
