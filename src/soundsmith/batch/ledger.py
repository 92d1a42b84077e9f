"""A batch folder's records: what is done (manifest.jsonl), what failed (failures.jsonl), and who owns the folder.

    DIR/manifest.jsonl   one JSON object per finished line, appended as each lands:
                         {"line", "file", "sha256", "seconds", "worker", "host", "pid", "wall_time", "request"}
                         ("candidates": [{"file", "sha256"}, …] too when a line makes several files)
    DIR/failures.jsonl   one JSON object per line that failed in the latest run: {"line", "error", …}
    DIR/.batch.lock      held (flock) by the batch running in the folder

Every append is one write of a whole line followed by fsync, so a crash (kill -9, power) can at worst leave the
last line torn; opening the ledger drops a torn or unreadable line and any record whose files are gone or changed,
rewriting the manifest atomically, so each line of the jobs file has at most one record at every moment. Output
files are written whole or not at all (audio.write renames a finished temporary file); temporaries left by a
crash are removed when the folder is opened again.
"""

import fcntl
import hashlib
import json
import os
import re
import sys
import secrets
from pathlib import Path

from ..errors import InvalidArgument

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
LOCK = ".batch.lock"
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")  # audio.write's temporaries: .{name}.{8 hex}.tmp


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_files(record: dict) -> list[tuple[str, str]]:
    """(file, sha256) of every file a manifest record names, best first."""
    if "candidates" in record:
        return [(c["file"], c["sha256"]) for c in record["candidates"]]
    return [(record["file"], record["sha256"])]


class Ledger:
    """The records of one batch folder, locked for one batch at a time. `done`: line number → its manifest record
    (only records whose files exist with their hashes)."""

    def __init__(self, folder: str | os.PathLike, note=None):
        self.folder = Path(folder)
        self.note = note or (lambda message: print(message, file=sys.stderr, flush=True))
        if self.folder.exists() and not self.folder.is_dir():
            raise InvalidArgument(f"--out {str(self.folder)!r} is a file: give a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgument(f"--out {str(self.folder)!r} cannot be created ({exc.strerror})") from None
        self._lock = _take_lock(self.folder / LOCK)
        self._manifest = self._failures = None
        try:
            self.done = self._read_manifest()
            self._remove_temporaries()
        except BaseException:
            self.close()
            raise

    # ---- reading ----------------------------------------------------------------------------------------------
    def _read_manifest(self) -> dict[int, dict]:
        path = self.folder / MANIFEST
        raw = path.read_bytes() if path.exists() else b""
        lines = raw.split(b"\n")
        torn = lines.pop()  # after the last newline: empty unless a crash cut the last append short
        done, dropped = {}, 0
        if torn:
            self.note(f"{path}: the last line was cut short by a crash; its sound will be made again")
            dropped += 1
        for number, text in enumerate(lines, 1):
            record = _parse(text)
            if record is None:
                self.note(f"{path} line {number} is not a manifest record: dropped")
                dropped += 1
            elif record["line"] in done:
                dropped += 1  # a record for the same line twice (never written by soundsmith): keep the first
            elif not self._intact(record):
                self.note(f"{path} line {number}: the output of jobs line {record['line']} is missing or changed; "
                          f"it will be made again")
                dropped += 1
            else:
                done[record["line"]] = record
        if dropped:
            self._rewrite(path, [json.dumps(r, ensure_ascii=False) for r in done.values()])
        return done

    def _intact(self, record: dict) -> bool:
        for name, digest in record_files(record):
            path = self.folder / name
            if not path.is_file() or sha256_file(path) != digest:
                return False
        return True

    def _rewrite(self, path: Path, lines: list[str]) -> None:
        temporary = self.folder / f".{path.name}.{secrets.token_hex(4)}.rewrite"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write("".join(line + "\n" for line in lines).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        from ..audio import fsync_folder  # audio's module pulls torch in: imported when a manifest is rewritten

        fsync_folder(self.folder)

    def _remove_temporaries(self) -> None:
        for entry in os.scandir(self.folder):
            if entry.is_file() and (_TEMPORARY.match(entry.name) or entry.name.endswith(".rewrite")):
                os.unlink(entry.path)

    # ---- writing ----------------------------------------------------------------------------------------------
    def start_run(self) -> None:
        """Open the manifest for appending and start failures.jsonl afresh (it lists the latest run's failures)."""
        self._rewrite(self.folder / FAILURES, [])
        self._manifest = _open_append(self.folder / MANIFEST)
        self._failures = _open_append(self.folder / FAILURES)

    def add(self, record: dict) -> None:
        """Append a finished line's record (its files already written) and count it done."""
        if record["line"] in self.done:
            raise RuntimeError(f"jobs line {record['line']} is already in the manifest")
        _append(self._manifest, record)
        self.done[record["line"]] = record

    def fail(self, record: dict) -> None:
        _append(self._failures, record)

    def close(self) -> None:
        for fd in (self._manifest, self._failures, self._lock):
            if fd is not None:
                os.close(fd)
        self._manifest = self._failures = self._lock = None


def _parse(text: bytes) -> dict | None:
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("line"), int):
        return None
    try:
        files = record_files(record)
    except (KeyError, TypeError):
        return None
    ok = all(isinstance(f, str) and isinstance(d, str) and f and "/" not in f for f, d in files)
    return record if ok and isinstance(record.get("request"), dict) else None


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 64).decode("ascii", "replace").strip()
        os.close(fd)
        raise InvalidArgument(f"--out {str(path.parent)!r} is in use by another soundsmith batch"
                              f"{f' (pid {owner})' if owner else ''}: wait for it or choose another folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)


def _append(fd: int, record: dict) -> None:
    """One record as one line: a single write of the whole line (O_APPEND), then fsync."""
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    view = memoryview(data)
    while view:  # a regular file takes the whole buffer in one write; the loop only guards a short write
        view = view[os.write(fd, view):]
    os.fsync(fd)
