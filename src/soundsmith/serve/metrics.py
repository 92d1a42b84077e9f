"""`GET /metrics`: the service in Prometheus' text format (version 0.0.4).

- soundsmith_queue_length: jobs waiting (gauge);
- soundsmith_jobs{status=…}: jobs in the store by status (gauge; the store survives restarts, so these do too);
- soundsmith_workers, soundsmith_workers_busy: workers, and those running a job now;
- soundsmith_job_seconds: seconds from a job's start to its end in this process, by outcome (histogram);
- soundsmith_models_loaded: warm pipelines.
"""

import threading

BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)  # seconds


class Metrics:
    """Run times of the jobs this process finished, by outcome (succeeded, failed, cancelled)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.runs: dict[str, list] = {}  # outcome → [count per bucket…, +Inf count, sum]

    def finished(self, outcome: str, seconds: float) -> None:
        with self._lock:
            row = self.runs.setdefault(outcome, [0] * (len(BUCKETS) + 1) + [0.0])
            for i, edge in enumerate(BUCKETS):
                if seconds <= edge:
                    row[i] += 1
            row[len(BUCKETS)] += 1
            row[-1] += seconds

    def render(self, counts: dict[str, int], workers: int, busy: int, loaded: int) -> str:
        lines = ["# HELP soundsmith_queue_length Jobs waiting for a worker.", "# TYPE soundsmith_queue_length gauge",
                 f"soundsmith_queue_length {counts.get('queued', 0)}",
                 "# HELP soundsmith_jobs Jobs in the store by status.", "# TYPE soundsmith_jobs gauge"]
        lines += [f'soundsmith_jobs{{status="{status}"}} {n}' for status, n in counts.items()]
        lines += ["# HELP soundsmith_workers Workers (one job at a time each).", "# TYPE soundsmith_workers gauge",
                  f"soundsmith_workers {workers}",
                  "# HELP soundsmith_workers_busy Workers running a job now.", "# TYPE soundsmith_workers_busy gauge",
                  f"soundsmith_workers_busy {busy}",
                  "# HELP soundsmith_models_loaded Pipelines loaded and warm.", "# TYPE soundsmith_models_loaded gauge",
                  f"soundsmith_models_loaded {loaded}",
                  "# HELP soundsmith_job_seconds Seconds from a job's start to its end, by outcome.",
                  "# TYPE soundsmith_job_seconds histogram"]
        with self._lock:
            runs = {outcome: list(row) for outcome, row in self.runs.items()}
        for outcome, row in sorted(runs.items()):
            for edge, n in zip(BUCKETS, row):
                lines.append(f'soundsmith_job_seconds_bucket{{outcome="{outcome}",le="{edge:g}"}} {n}')
            lines.append(f'soundsmith_job_seconds_bucket{{outcome="{outcome}",le="+Inf"}} {row[len(BUCKETS)]}')
            lines.append(f'soundsmith_job_seconds_sum{{outcome="{outcome}"}} {row[-1]:.6f}')
            lines.append(f'soundsmith_job_seconds_count{{outcome="{outcome}"}} {row[len(BUCKETS)]}')
        return "\n".join(lines) + "\n"
