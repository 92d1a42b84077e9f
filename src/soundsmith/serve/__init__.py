"""`soundsmith serve`: the HTTP service — a durable job queue (SQLite, WAL) with warm workers, built on
soundsmith.Request and the engine.

    soundsmith serve --models demo --data ~/sounds-service        # then: curl localhost:8000/v1/models

One concern per file: config (settings and caps), catalog (the served models), admission (what a request may
ask), store (jobs, idempotency keys, uploads), uploads (audio in, checked by content), workers (warm pipelines,
running jobs), auth (bearer tokens), metrics (Prometheus text), app (the routes), command (the CLI). FastAPI and
uvicorn are the optional `serve` extra: nothing here imports them until the service starts.
"""

from .command import add_commands

__all__ = ["add_commands"]
