"""The service's durable state: jobs, idempotency keys and uploads in one SQLite database (WAL) in the data folder.

A job is committed before the client hears `202` (synchronous=FULL: the commit is on disk, not only in the
process), moves queued → running → succeeded | failed | cancelled, and is claimed by one worker at a time in the
order it was submitted. A job still `running` when the process starts again was interrupted (kill -9, power
loss): `recover()` puts it back in the queue, ahead of later jobs, and gives up on it after MAX_ATTEMPTS starts.

One connection, serialised by a lock: every statement is a few hundred microseconds plus the commit's fsync, and
the service's threads (HTTP handlers, workers) never hold it across other work.
"""

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")
MAX_ATTEMPTS = 3  # starts of one job (restarts included) before it is failed instead of run again
JOB_ID = r"job_[0-9a-f]{16}"
UPLOAD_ID = r"upl_[0-9a-f]{16}"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    ran TEXT,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    outputs TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    starred INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    format TEXT NOT NULL,
    seconds REAL NOT NULL,
    sample_rate INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


class QueueFull(Exception):
    """The queue holds `limit` jobs already."""


class KeyConflict(Exception):
    """An idempotency key was used before with a different request."""


@dataclass
class Job:
    """A row of the jobs table. request: the request as submitted (seed fixed); ran: as run, with the model's
    defaults filled in (once succeeded); outputs: [{"seconds", "sample_rate", "score"}] in file order; times are
    seconds since the epoch."""

    seq: int
    id: str
    status: str
    request: dict
    ran: dict | None
    progress: float
    error: str | None
    outputs: list = field(default_factory=list)
    attempts: int = 0
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    starred: bool = False  # kept by the user (the studio's star)


@dataclass
class Upload:
    id: str
    file: str  # file name inside the uploads folder (chosen by the service, never by the client)
    format: str
    seconds: float
    sample_rate: int
    channels: int
    bytes: int
    created: float


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class Store:
    """Jobs, idempotency keys and uploads of one data folder (`folder/jobs.db`)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "jobs.db"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "starred" not in columns:  # a database written before jobs could be starred
                self._db.execute("ALTER TABLE jobs ADD COLUMN starred INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- jobs -------------------------------------------------------------------------------------------------
    def submit(self, request: dict, *, queue_limit: int, key: str | None = None, digest: str = "") -> tuple[Job, bool]:
        """Queue a job, committed before returning → (job, True); with an idempotency key seen before for the same
        digest → (that job, False). Raises QueueFull or KeyConflict."""
        with self._lock, self._transaction():
            if key is not None:
                row = self._db.execute("SELECT job_id, digest FROM idempotency WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    if row["digest"] != digest:
                        raise KeyConflict(key)
                    return self._get(row["job_id"]), False
            queued = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
            if queued >= queue_limit:
                raise QueueFull(queued)
            job_id, now = new_id("job"), time.time()
            self._db.execute("INSERT INTO jobs (id, status, request, created) VALUES (?, 'queued', ?, ?)",
                             (job_id, json.dumps(request), now))
            if key is not None:
                self._db.execute("INSERT INTO idempotency (key, job_id, digest, created) VALUES (?, ?, ?, ?)",
                                 (key, job_id, digest, now))
            return self._get(job_id), True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._get(job_id)

    def list(self, status: str | None = None, limit: int = 50, before: int | None = None, prompt: str | None = None,
             starred: bool | None = None) -> list[Job]:
        """Newest first; `before`: only jobs submitted before the one with this seq; `prompt`: only jobs whose
        prompt contains this text (ASCII letters in any case); `starred`: only starred (True) or unstarred jobs."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if prompt:
            escaped = prompt.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("json_extract(request, '$.prompt') LIKE ? ESCAPE '\\'")
            args.append(f"%{escaped}%")
        if starred is not None:
            where.append("starred = ?")
            args.append(int(starred))
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            return [_job(row) for row in self._db.execute(sql, (*args, limit)).fetchall()]

    def claim(self) -> Job | None:
        """The oldest queued job, now running (one attempt more), or None."""
        with self._lock, self._transaction():
            row = self._db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE jobs SET status = 'running', started = ?, progress = 0, "
                             "attempts = attempts + 1 WHERE id = ?", (time.time(), row["id"]))
            return self._get(row["id"])

    def succeed(self, job_id: str, outputs: list, ran: dict) -> bool:
        """Mark a running job succeeded (its files are written already); False when it is no longer running
        (cancelled meanwhile)."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status = 'succeeded', outputs = ?, ran = ?, progress = 1, "
                                   "finished = ? WHERE id = ? AND status = 'running'",
                                   (json.dumps(outputs), json.dumps(ran), time.time(), job_id))
            return cur.rowcount == 1

    def fail(self, job_id: str, error: str, progress: float | None = None) -> bool:
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status = 'failed', error = ?, finished = ?, "
                                   "progress = COALESCE(?, progress) WHERE id = ? AND status = 'running'",
                                   (error, time.time(), progress, job_id))
            return cur.rowcount == 1

    def cancel(self, job_id: str) -> tuple[Job | None, str | None]:
        """Cancel a queued or running job → (job as it is now, status it had); a finished job is left as it is."""
        with self._lock, self._transaction():
            job = self._get(job_id)
            if job is None or job.status in FINAL:
                return job, None if job is None else job.status
            self._db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ?", (time.time(), job_id))
            return self._get(job_id), job.status

    def star(self, job_id: str, starred: bool) -> Job | None:
        """Keep (or stop keeping) a job → the job as it is now, None when there is no such job."""
        with self._lock:
            self._db.execute("UPDATE jobs SET starred = ? WHERE id = ?", (int(starred), job_id))
            return self._get(job_id)

    def record_progress(self, job_id: str, progress: float) -> None:
        """Where a job stopped (a cancelled job's last step)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (progress, job_id))

    def recover(self) -> tuple[int, int]:
        """At start: jobs left `running` by a process that died go back to the queue (their order kept), or fail
        after MAX_ATTEMPTS starts → (requeued, failed)."""
        with self._lock, self._transaction():
            failed = self._db.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE status = 'running' AND attempts >= ?",
                (time.time(), f"the service stopped while running this job {MAX_ATTEMPTS} times: given up",
                 MAX_ATTEMPTS)).rowcount
            requeued = self._db.execute("UPDATE jobs SET status = 'queued', progress = 0, started = NULL "
                                        "WHERE status = 'running'").rowcount
            return requeued, failed

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {**{s: 0 for s in STATUSES}, **{row["status"]: row["n"] for row in rows}}

    def queue_position(self, job: Job) -> int:
        """Queued jobs ahead of this one (0: next)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq < ?",
                                    (job.seq,)).fetchone()[0]

    # ---- uploads ----------------------------------------------------------------------------------------------
    def add_upload(self, upload: Upload) -> None:
        with self._lock:
            self._db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (upload.id, upload.file, upload.format, upload.seconds, upload.sample_rate,
                              upload.channels, upload.bytes, upload.created))

    def get_upload(self, upload_id: str) -> Upload | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        return None if row is None else Upload(**dict(row))

    # ---- internals --------------------------------------------------------------------------------------------
    def _get(self, job_id: str) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on an exception): the caller holds the store's lock."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, tb):
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")
        return False


def _job(row) -> Job:
    data = dict(row)
    data["request"] = json.loads(data["request"])
    data["ran"] = json.loads(data["ran"]) if data["ran"] else None
    data["outputs"] = json.loads(data["outputs"]) if data["outputs"] else []
    data["starred"] = bool(data["starred"])
    return Job(**data)
