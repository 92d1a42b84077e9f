"""The HTTP routes of `soundsmith serve` (FastAPI). Interactive documentation at /docs.

    POST   /v1/jobs                     a request (soundsmith.Request's JSON) → 202 {"id", "status": "queued", …}
    GET    /v1/jobs?status=&limit=&before=&q=&starred=   newest first → {"jobs": […], "next": id | null}
    GET    /v1/jobs/{id}                {"id", "status", "progress", "request", "error", "outputs", "created", …}
    PATCH  /v1/jobs/{id}                {"starred": true|false}: keep a job (the studio's star)
    DELETE /v1/jobs/{id}                cancel: a queued job never runs, a running one stops at its next step
    GET    /v1/jobs/{id}/events         server-sent events: the job's JSON at every change, until it ends
    GET    /v1/jobs/{id}/audio/{i}      audio/wav (?format=flac), the request in its metadata, range requests
    POST   /v1/uploads                  audio for the audio tasks (raw body or multipart field "file") → {"id", …}
    GET    /v1/models   GET /healthz   GET /metrics

Every refusal is a 4xx JSON {"detail": "<one line naming the field>"}; files are found by job id and index only.
State lives in the store (store.py), jobs run in the workers (workers.py), requests are admitted by admission.py.
"""

import asyncio
import json
import logging
import math
import re
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import InvalidArgument, SoundsmithError
from . import uploads
from .admission import admit, digest
from .auth import CHALLENGE, bearer_ok
from .catalog import resolve_models
from .config import Settings
from .metrics import Metrics
from .store import FINAL, JOB_ID, STATUSES, KeyConflict, QueueFull, Store
from .workers import Workers, pin_cpu_linear_path

log = logging.getLogger("soundsmith.serve")
MAX_BODY = 1024 * 1024  # bytes of a job's JSON
MAX_LIST = 500  # jobs per page
MAX_QUERY = 200  # characters of a prompt search
EVENT_POLL = 0.1  # seconds between looks at a job for its event stream
KEEP_ALIVE = 15.0  # seconds of silence before an event stream sends a comment
_JOB = re.compile(JOB_ID)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_NUMBER = re.compile(r"[0-9]{1,9}")
_LENGTH = re.compile(r"[0-9]{1,30}")
_EXAMPLE = {"task": "generate", "prompt": "a dog barking in the rain", "model": "demo", "duration": 3, "steps": 10,
            "seed": 0}


class Service:
    """What the routes share: settings, served models, the store, the workers and the metrics."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data = settings.data_folder
        self.models = resolve_models(settings.models)
        self.store = Store(self.data)
        pin_cpu_linear_path(self.data)
        requeued, failed = self.store.recover()
        if requeued or failed:
            log.warning("%d interrupted job(s) queued again, %d given up", requeued, failed)
        self.metrics = Metrics()
        self.workers = Workers(settings, self.store, self.models, self.metrics)
        self._flac = threading.Lock()

    def job_json(self, job) -> dict:
        progress = self.workers.progress.get(job.id, job.progress) if job.status == "running" else job.progress
        return {"id": job.id, "status": job.status, "progress": round(progress, 4), "request": job.ran or job.request,
                "error": job.error,
                "outputs": [{"url": f"/v1/jobs/{job.id}/audio/{i}", **out} for i, out in enumerate(job.outputs)],
                "created": _iso(job.created), "started": _iso(job.started), "finished": _iso(job.finished),
                "starred": job.starred,
                "position": self.store.queue_position(job) if job.status == "queued" else None,
                "attempts": job.attempts}

    def find(self, job_id: str):
        """The job, or 404 — ids are checked by shape first, so no other text reaches the store."""
        job = self.store.get(job_id) if _JOB.fullmatch(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id[:80]!r}")
        return job

    def retry_after(self) -> int:
        """Seconds until the queue is likely to have room again (a running job ends and a queued one starts), from
        this process's mean job time (5 s before any has run)."""
        row = self.metrics.runs.get("succeeded")
        mean = row[-1] / row[-2] if row and row[-2] else 5.0
        return max(1, min(600, math.ceil(mean / self.settings.workers)))

    def flac(self, wav: Path) -> Path:
        """The FLAC copy of an output (same samples, same metadata), made on first request."""
        flac = wav.with_suffix(".flac")
        with self._flac:
            if not flac.exists():
                import soundfile

                from ..audio import read_metadata, write

                samples, rate = soundfile.read(wav, dtype="int16")
                write(flac, samples.T / 32768.0, rate, read_metadata(wav))
        return flac


def create_app(settings: Settings) -> FastAPI:
    """The service's app; models are resolved and the store opened now (a bad --models or --data fails here, before
    anything listens). Workers start with the app and stop with it."""
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app):
        service.workers.start()
        yield
        await run_in_threadpool(service.workers.stop)
        service.store.close()

    app = FastAPI(title="soundsmith", version=__version__, lifespan=lifespan,
                  description="Text-to-audio with the AudioLDM family: a durable job queue with warm workers.")
    app.state.service = service
    _add_error_handlers(app)

    def authorised(request: HTTPRequest):
        if settings.token is not None and not bearer_ok(request.headers.get("authorization"), settings.token):
            raise HTTPException(401, "missing or wrong bearer token: send Authorization: Bearer <token>", CHALLENGE)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorised)])
    _job_routes(v1, service)
    _other_routes(v1, service)
    app.include_router(v1)

    @app.get("/healthz", summary="liveness: workers and queue")
    def healthz():
        counts = service.store.counts()
        return {"status": "ok", "version": __version__, "workers": settings.workers, "busy": service.workers.busy,
                "queued": counts["queued"]}

    @app.get("/metrics", summary="Prometheus text format", dependencies=[Depends(authorised)],
             response_class=PlainTextResponse)
    def metrics():
        text = service.metrics.render(service.store.counts(), settings.workers, service.workers.busy,
                                      len(service.workers.pipelines.loaded))
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    from .. import studio

    studio.mount(app)  # the web page at /, its files under /studio

    return app


def _job_routes(v1: APIRouter, service: Service) -> None:
    settings, store, workers = service.settings, service.store, service.workers

    @v1.post("/jobs", status_code=202, summary="submit a job",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object"}, "example": _EXAMPLE}}}})
    async def submit(request: HTTPRequest):
        body = await _json_body(request)
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY.fullmatch(key):
            raise InvalidArgument("Idempotency-Key is not allowed: give 1 to 255 printable ASCII characters")
        job_request = await run_in_threadpool(admit, body, settings, service.models, store)
        try:
            job, created = await run_in_threadpool(store.submit, job_request.to_dict(), queue_limit=settings.queue_size,
                                                   key=key, digest=digest(body))
        except QueueFull as full:
            raise HTTPException(429, f"the queue is full ({full.args[0]} jobs waiting): retry later",
                                {"Retry-After": str(service.retry_after())}) from None
        except KeyConflict:
            raise HTTPException(409, "Idempotency-Key was used before with a different request: use a new key") from None
        if created:
            workers.wake()
        payload = await run_in_threadpool(service.job_json, job)
        return JSONResponse(payload, 202, headers=None if created else {"Idempotent-Replayed": "true"})

    @v1.get("/jobs", summary="list jobs, newest first")
    def list_jobs(status: str | None = None, limit: str = "50", before: str | None = None, q: str | None = None,
                  starred: str | None = None):
        if starred is not None and starred not in ("true", "false"):
            raise InvalidArgument(f"starred={starred[:20]!r} is not allowed (allowed: true, false)")
        if q is not None and len(q) > MAX_QUERY:
            raise InvalidArgument(f"q is {len(q)} characters long: give at most {MAX_QUERY}")
        if status is not None and status not in STATUSES:
            raise InvalidArgument(f"status={status!r} is not allowed (allowed: {', '.join(STATUSES)})")
        if not _NUMBER.fullmatch(limit) or not 1 <= int(limit) <= MAX_LIST:
            raise InvalidArgument(f"limit={limit[:20]!r} is not allowed: give a whole number from 1 to {MAX_LIST}")
        seq = None
        if before is not None:
            anchor = store.get(before) if _JOB.fullmatch(before) else None
            if anchor is None:
                raise InvalidArgument(f"before={before[:80]!r} is not a job id (give the \"next\" of a previous page)")
            seq = anchor.seq
        jobs = store.list(status, int(limit), seq, prompt=q or None,
                          starred=None if starred is None else starred == "true")
        return {"jobs": [service.job_json(j) for j in jobs],
                "next": jobs[-1].id if len(jobs) == int(limit) else None}

    @v1.get("/jobs/{job_id}", summary="a job: status, progress, request, outputs")
    def get_job(job_id: str):
        return service.job_json(service.find(job_id))

    @v1.patch("/jobs/{job_id}", summary="star a job: {\"starred\": true} keeps it, false stops keeping it")
    async def star_job(job_id: str, request: HTTPRequest):
        await run_in_threadpool(service.find, job_id)
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) != {"starred"} or not isinstance(body["starred"], bool):
            raise InvalidArgument('give {"starred": true} or {"starred": false}')
        return service.job_json(await run_in_threadpool(store.star, job_id, body["starred"]))

    @v1.delete("/jobs/{job_id}", summary="cancel a job")
    def cancel_job(job_id: str):
        service.find(job_id)
        job, was = store.cancel(job_id)
        if was in ("succeeded", "failed"):
            raise HTTPException(409, f"job {job_id} already {was}: nothing to cancel")
        if was == "running":
            workers.cancel(job_id)
        return service.job_json(job)

    @v1.get("/jobs/{job_id}/events", summary="server-sent events: the job at every change until it ends")
    async def events(job_id: str, request: HTTPRequest):
        await run_in_threadpool(service.find, job_id)

        async def stream():
            last, quiet = None, time.monotonic()
            while not await request.is_disconnected():
                job = await run_in_threadpool(store.get, job_id)
                payload = await run_in_threadpool(service.job_json, job)
                if (payload["status"], payload["progress"]) != last:
                    last, quiet = (payload["status"], payload["progress"]), time.monotonic()
                    yield f"event: job\ndata: {json.dumps(payload)}\n\n"
                    if payload["status"] in FINAL:
                        return
                elif time.monotonic() - quiet > KEEP_ALIVE:
                    quiet = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(EVENT_POLL)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @v1.get("/jobs/{job_id}/audio/{index}", summary="an output: audio/wav, or audio/flac with ?format=flac",
            response_class=FileResponse)
    def audio(job_id: str, index: str, format: str = "wav"):
        job = service.find(job_id)
        if format not in ("wav", "flac"):
            raise InvalidArgument(f"format={format[:20]!r} is not allowed (allowed: wav, flac)")
        if not _NUMBER.fullmatch(index) or int(index) >= max(len(job.outputs), 1):
            raise HTTPException(404, f"job {job_id} has no output {index[:20]!r}")
        if job.status != "succeeded":
            raise HTTPException(409, f"job {job_id} is {job.status}: it has no audio" +
                                (" yet" if job.status in ("queued", "running") else ""))
        path = service.data / "jobs" / job.id / f"{int(index)}.wav"
        if not path.is_file():
            raise HTTPException(410, f"output {index} of job {job_id} is no longer stored")
        if format == "flac":
            path = service.flac(path)
        return FileResponse(path, media_type=f"audio/{format}", filename=f"{job.id}-{int(index)}.{format}",
                            content_disposition_type="inline")


def _other_routes(v1: APIRouter, service: Service) -> None:
    settings, store = service.settings, service.store

    @v1.post("/uploads", status_code=201, summary="audio input for the audio tasks (wav, flac, ogg, mp3)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "file": {"type": "string", "format": "binary"}}}}}}})
    async def upload(request: HTTPRequest):
        limit = settings.max_upload_bytes
        declared = request.headers.get("content-length")
        too_large = f"the upload is larger than this server's cap of {settings.max_upload_mb:g} MB"
        if declared is not None and _LENGTH.fullmatch(declared) and int(declared) > limit + 64 * 1024:
            raise HTTPException(413, too_large)
        received = uploads.incoming(service.data)
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                if declared is None:
                    raise HTTPException(411, "a multipart upload needs a Content-Length (or send the raw bytes)")
                size = await _receive_multipart(request, received)
            else:
                size = await _receive_raw(request, received, limit)
            if size > limit:
                raise HTTPException(413, too_large)
            info = await run_in_threadpool(uploads.accept, service.data, received, size)
            await run_in_threadpool(store.add_upload, info)
        finally:
            received.unlink(missing_ok=True)
        return JSONResponse({"id": info.id, "format": info.format, "seconds": info.seconds,
                             "sample_rate": info.sample_rate, "channels": info.channels, "bytes": info.bytes,
                             "created": _iso(info.created)}, 201)

    @v1.get("/models", summary="the models this server runs")
    def models():
        loaded = service.workers.pipelines.loaded
        return {"models": [{"name": m.name, "family": m.family, "sample_rate": m.sample_rate, "loaded": m.name in loaded,
                            "default": i == 0, "default_steps": m.default_steps,
                            "default_seconds": round(m.default_seconds, 4), "min_seconds": m.min_seconds,
                            "ranks": m.ranks}
                           for i, m in enumerate(service.models.values())],
                "limits": {"duration": settings.max_duration, "steps": settings.max_steps,
                           "candidates": settings.max_candidates, "upload_mb": settings.max_upload_mb}}


async def _json_body(request: HTTPRequest):
    declared = request.headers.get("content-length")
    if declared is not None and _LENGTH.fullmatch(declared) and int(declared) > MAX_BODY:
        raise HTTPException(413, f"the request body is larger than {MAX_BODY // 1024} KB")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise HTTPException(413, f"the request body is larger than {MAX_BODY // 1024} KB")
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidArgument("the body nests too deeply: send a request object") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the body is not JSON ({str(exc).splitlines()[0][:80]}): send a request object, "
                              f"e.g. {json.dumps(_EXAMPLE)}") from None


async def _receive_raw(request: HTTPRequest, path: Path, limit: int) -> int:
    size = 0
    with open(path, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return size
            f.write(chunk)
    return size


async def _receive_multipart(request: HTTPRequest, path: Path) -> int:
    from starlette.datastructures import UploadFile

    form = await request.form(max_files=1, max_fields=8)
    try:
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if not files:
            raise InvalidArgument("the multipart upload has no file: send the audio in a field named \"file\"")
        size = 0
        with open(path, "wb") as f:
            while chunk := await files[0].read(1 << 20):
                size += len(chunk)
                f.write(chunk)
        return size
    finally:
        await form.close()


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SoundsmithError)
    async def user_error(request, exc):
        status = 415 if isinstance(exc, uploads.UnsupportedAudio) else 422
        return JSONResponse({"detail": _line(str(exc))}, status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")) or "request"
        return JSONResponse({"detail": _line(f"{where}: {first.get('msg', 'is not valid')}")}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request, exc):
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error: see the server log"}, 500)


def _line(text: str) -> str:
    return " ".join(text.split())[:500]


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
