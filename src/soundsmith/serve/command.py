"""`soundsmith serve`: flags → Settings → the app under uvicorn. Registered by cli.build_parser through
`add_commands(sub)`; FastAPI and uvicorn are imported only when the command runs (the optional `serve` extra)."""

import argparse
import os
import sys

from ..errors import SoundsmithError
from .config import TOKEN_ENV, Settings, default_data


def add_commands(sub) -> None:
    p = sub.add_parser("serve", help="HTTP service: a durable job queue with warm workers (pip install "
                                     "'soundsmith[serve]')",
                       description="Run the HTTP API (docs at /docs once it runs). Jobs and audio live in --data and "
                                   "survive restarts; a job interrupted by a crash runs again with the same seed.")
    defaults = Settings()
    p.add_argument("--host", default=defaults.host,
                   help="address to listen on (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, default=defaults.port, help="port (default 8000)")
    p.add_argument("--models", default=None, metavar="NAME_OR_FOLDER,…",
                   help="the only models clients may use, comma-separated, the first being the default (default: "
                        "`generate`'s choice, the bundled demo offline); a folder is served under its base name")
    p.add_argument("--data", default=None, metavar="DIR",
                   help=f"job database, uploads and outputs (default {default_data()})")
    p.add_argument("--token", default=None,
                   help=f"bearer token every /v1 route and /metrics require (default: ${TOKEN_ENV}; none on loopback)")
    p.add_argument("--workers", type=int, default=defaults.workers, help="jobs run at once (default 1)")
    p.add_argument("--queue-size", type=int, default=defaults.queue_size,
                   help=f"queued jobs before submissions get 429 (default {defaults.queue_size})")
    p.add_argument("--max-duration", type=float, default=defaults.max_duration,
                   help=f"seconds of audio per job, input included (default {defaults.max_duration:g})")
    p.add_argument("--max-steps", type=int, default=defaults.max_steps,
                   help=f"sampler steps per job (default {defaults.max_steps})")
    p.add_argument("--max-candidates", type=int, default=defaults.max_candidates,
                   help=f"waveforms per job, prompts × candidates (default {defaults.max_candidates})")
    p.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb,
                   help=f"size of an uploaded audio file (default {defaults.max_upload_mb:g} MB)")
    p.add_argument("--memory-budget-gb", type=float, default=None,
                   help="weights of warm pipelines before the least recently used is unloaded (default: no limit)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "int8"])
    p.add_argument("--backend", default="torch", choices=["torch", "openvino", "fastest"],
                   help="what runs the UNet on the cpu: torch (default), openvino, or fastest (measured once per "
                        "machine and length; a worker's first sound at a new length converts)")
    p.set_defaults(func=cmd_serve)


def settings_from(args: argparse.Namespace) -> Settings:
    models = None
    if args.models is not None:
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    return Settings(host=args.host, port=args.port, models=models or None, data=args.data,
                    token=args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None,
                    workers=args.workers, queue_size=args.queue_size, max_duration=args.max_duration,
                    max_steps=args.max_steps, max_candidates=args.max_candidates, max_upload_mb=args.max_upload_mb,
                    memory_budget_gb=args.memory_budget_gb, device=args.device, dtype=args.dtype,
                    backend=args.backend)


def cmd_serve(args) -> int:
    settings = settings_from(args)  # refuses a non-loopback host without a token before anything loads
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise SoundsmithError(f"soundsmith serve needs FastAPI and uvicorn ({exc.name} is missing): "
                              f"pip install 'soundsmith[serve]'") from None
    from .. import openvino_unet
    from ..pipelines import is_int8, resolve_device

    openvino_unet.check_backend(settings.backend, resolve_device(settings.device), False, is_int8(settings.dtype))
    app = create_app(settings)
    service = app.state.service
    print(f"soundsmith serve: http://{_url_host(settings.host)}:{settings.port} (API docs at /docs), models "
          f"{', '.join(service.models)}, data {service.data}" + (", token required" if settings.token else ""),
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
