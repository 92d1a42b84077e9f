"""Load test of `soundsmith serve`: many concurrent submissions from many clients over loopback HTTP.

    .venv/bin/python bench/serve_load.py [--jobs 200] [--clients 50] [--model demo] [--duration 1] [--steps 2]
                                         [--workers 1] [--threads N] [--write]

Starts a server in a subprocess (a fresh --data folder, a free loopback port), then --clients threads, each with its
own HTTP connection, are released together and submit their share of --jobs at once, each job with its own
Idempotency-Key (a submission that fails in transport is retried once with the same key, as a client should). Every
POST is timed. Then it waits for every accepted job and checks that each ended `succeeded` with a WAV that
downloads, and that the store holds exactly the accepted jobs. It prints errors (any answer but 202, or a
transport failure after the retry), lost jobs (accepted, then missing, duplicated or not succeeded), submit
latency p50 / p99 / max, submissions per second, and jobs per minute (server clock: first job created → last job
finished). --write appends the result to bench/RESULTS.md. There is no reference to compare with here: diffusers has
no service.
"""

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, data: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    command = [sys.executable, "-m", "soundsmith.cli", "serve", "--port", str(port), "--models", args.model,
               "--data", str(data), "--workers", str(args.workers), "--queue-size", str(max(1000, args.jobs))]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    sys.exit("the server did not start within 300 s")


def submit_all(url: str, bodies: list[dict], clients: int) -> tuple[list, list, list]:
    """Each client thread submits its share as soon as all are ready → (accepted ids, latencies s, errors)."""
    shares = [bodies[i::clients] for i in range(clients)]
    accepted, latencies, errors = [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(share):
        with httpx.Client(base_url=url, timeout=120) as http:
            barrier.wait()
            for body in share:
                key = {"Idempotency-Key": uuid.uuid4().hex}
                for attempt in (1, 2):
                    started = time.perf_counter()
                    try:
                        answer = http.post("/v1/jobs", json=body, headers=key)
                    except httpx.TransportError as exc:
                        if attempt == 2:
                            with lock:
                                errors.append(f"transport: {exc!r}")
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - started)
                        if answer.status_code == 202:
                            accepted.append(answer.json()["id"])
                        else:
                            errors.append(f"{answer.status_code}: {answer.text[:200]}")
                    break

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return accepted, latencies, errors


def wait_all(url: str, accepted: list[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=120) as http:
        while True:
            jobs = http.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
            pending = [j for j in jobs if j["status"] in ("queued", "running")]
            if not pending or time.monotonic() > deadline:
                return jobs
            print(f"  {len(jobs) - len(pending)}/{len(jobs)} done", file=sys.stderr, flush=True)
            time.sleep(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--model", default="demo", help="served model (name or folder)")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds of audio per job")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the server")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the jobs")
    parser.add_argument("--write", action="store_true", help="append the result to bench/RESULTS.md")
    args = parser.parse_args()

    load_before = os.getloadavg()
    bodies = [{"prompt": f"load test sound {i}", "duration": args.duration, "steps": args.steps}  # the served model
              for i in range(args.jobs)]
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        process, url = start_server(args, Path(tmp) / "data", Path(tmp) / "server.log")
        try:
            wall = time.perf_counter()
            accepted, latencies, errors = submit_all(url, bodies, args.clients)
            submit_wall = time.perf_counter() - wall
            jobs = wait_all(url, accepted, args.timeout)
            load_after = os.getloadavg()
            by_id = {j["id"]: j for j in jobs}
            lost = [i for i in accepted if i not in by_id or by_id[i]["status"] != "succeeded"]
            lost += [j["id"] for j in jobs if j["id"] not in set(accepted)]  # stored but never acknowledged
            lost += [i for i in set(accepted) if accepted.count(i) > 1]
            with httpx.Client(base_url=url, timeout=120) as http:
                bad_audio = sum(http.get(by_id[i]["outputs"][0]["url"]).content[:4] != b"RIFF"
                                for i in accepted if i in by_id and by_id[i]["outputs"])
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
    created = min(datetime.fromisoformat(j["created"].replace("Z", "+00:00")) for j in jobs)
    finished = max(datetime.fromisoformat(j["finished"].replace("Z", "+00:00")) for j in jobs if j["finished"])
    span = (finished - created).total_seconds()
    run_seconds = [(datetime.fromisoformat(j["finished"].replace("Z", "+00:00")) -
                    datetime.fromisoformat(j["started"].replace("Z", "+00:00"))).total_seconds()
                   for j in jobs if j["status"] == "succeeded"]
    ms = [1000 * x for x in latencies]
    lines = [
        f"Command: `.venv/bin/python bench/serve_load.py {shlex.join(sys.argv[1:])}`",
        "",
        f"Machine: {os.cpu_count()} CPUs; load average {' '.join(f'{x:.1f}' for x in load_before)} at the start, "
        f"{' '.join(f'{x:.1f}' for x in load_after)} at the end. Server: model {args.model}, {args.workers} "
        f"worker(s), OMP_NUM_THREADS={args.threads or 'unset'}; each job {args.duration:g} s of audio, "
        f"{args.steps} steps.",
        "",
        "| jobs | clients | errors | lost jobs | bad downloads | submit p50 ms | submit p99 ms | submit max ms | "
        "submissions/s | jobs/min | run s per job (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {args.jobs} | {args.clients} | {len(errors)} | {len(lost)} | {bad_audio} | {percentile(ms, 50):.1f} | "
        f"{percentile(ms, 99):.1f} | {max(ms):.1f} | {len(accepted) / submit_wall:.1f} | "
        f"{60 * len(run_seconds) / span:.1f} | {statistics.median(run_seconds):.2f} |",
    ]
    if errors:
        lines += ["", "Errors (first 5): " + "; ".join(errors[:5])]
    report = "\n".join(lines)
    print(report)
    if args.write:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
        with open(RESULTS, "a") as f:
            f.write(f"\n## Service load (bench/serve_load.py) — {stamp}\n\n{report}\n")
    if errors or lost or bad_audio:
        sys.exit(1)


if __name__ == "__main__":
    main()
