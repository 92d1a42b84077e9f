"""Ray workers: one actor per slot (one GPU each where the cluster has GPUs), each holding its model, fed one line
at a time. The same pool interface as local.LocalPool. An actor that dies (killed, out of memory, its node lost)
has its line handed back to the driver, which gives it to another actor; a replacement actor is started and gets
work only once Ray has placed it, so a line never waits on an actor the cluster cannot hold.

    connect("local")              a new local cluster (stopped at the end)
    connect("auto")               the cluster this machine joined (`ray start --head` / `ray start --address …`)
    connect("10.0.0.5:6379")      the cluster at that address (or "ray://host:10001" through Ray Client)
"""

import time

from ..errors import InvalidArgument
from .worker import Setup, Worker, one_line

MAX_STRIKES = 3


def _ray():
    try:
        import ray
    except ImportError:
        raise InvalidArgument("--ray needs Ray, which is not installed: pip install 'soundsmith[ray]'") from None
    return ray


def connect(address: str | None) -> bool:
    """Join or start a cluster unless this process is already connected. Returns whether we connected (and so
    should disconnect at the end)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
    try:
        if address in (None, "local"):
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except ConnectionError as exc:
        raise InvalidArgument(f"--ray {address}: cannot connect to a Ray cluster ({one_line(exc)})") from None
    return True


def disconnect() -> None:
    _ray().shutdown()


def resources() -> tuple[int, int, int]:
    """(GPUs, CPUs, alive nodes) of the connected cluster."""
    ray = _ray()
    total = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return int(total.get("GPU", 0)), int(total.get("CPU", 0)), max(1, nodes)


class RayPool:
    def __init__(self, setups: list[Setup], gpus: bool, owned: bool = False):
        """`owned`: this pool's run connected to the cluster, and close() disconnects (a local cluster stops)."""
        ray = _ray()
        self.owned = owned
        self.ray = ray
        self.setups = setups
        self.labels = [s.name for s in setups]
        self.actor_class = ray.remote(Worker)
        self.gpus = gpus
        self.actors = [None] * len(setups)
        self.starting: dict = {}  # ready ref → slot
        self.running: dict = {}  # run ref → slot
        self.busy: dict[int, object] = {}
        self.strikes = [0] * len(setups)
        self.retired: set[int] = set()
        for slot in range(len(setups)):
            self._start(slot)

    def _start(self, slot: int) -> None:
        setup = self.setups[slot]
        actor = self.actor_class.options(
            num_cpus=setup.threads or 1, num_gpus=1 if self.gpus else 0, max_restarts=0, max_concurrency=1,
            scheduling_strategy="SPREAD").remote(setup)
        self.actors[slot] = actor
        self.starting[actor.ready.remote()] = slot

    def idle(self) -> list[int]:
        waiting = set(self.starting.values())
        return [s for s in range(len(self.setups)) if s not in self.busy and s not in waiting and s not in self.retired]

    def alive(self) -> int:
        return len(self.setups) - len(self.retired)

    def submit(self, slot: int, item) -> None:
        ref = self.actors[slot].run.remote(item.line, item.request.to_dict())
        self.running[ref] = slot
        self.busy[slot] = item

    def wait(self, timeout: float) -> list[tuple]:
        refs = [*self.running, *self.starting]
        if not refs:
            time.sleep(min(timeout, 0.1))
            return []
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # everything else that is ready too
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        events = []
        for ref in ready:
            if ref in self.starting:
                slot = self.starting.pop(ref)
                try:
                    self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:
                    self._lost(slot, one_line(exc))
                continue
            slot = self.running.pop(ref)
            item = self.busy.pop(slot)
            try:
                result = self.ray.get(ref)
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.ActorUnavailableError) as exc:
                events.append(("died", slot, item, _why(exc)))
                self._lost(slot, _why(exc))
                continue
            except self.ray.exceptions.RayError as exc:  # the call itself failed: the line fails, the actor lives
                result = {"line": item.line, "ok": False, "error": one_line(exc), "worker": self.labels[slot]}
            self.strikes[slot] = 0
            events.append(("done", slot, item, result))
        return events

    def _lost(self, slot: int, why: str) -> None:
        try:
            self.ray.kill(self.actors[slot])
        except Exception:
            pass
        self.strikes[slot] += 1
        if self.strikes[slot] >= MAX_STRIKES:
            self.retired.add(slot)
        else:
            self._start(slot)

    def close(self, now: bool = False) -> None:
        for actor in self.actors:
            if actor is not None:
                try:
                    self.ray.kill(actor)
                except Exception:
                    pass
        if self.owned:
            disconnect()


def _why(exc) -> str:
    text = one_line(exc)
    return text if len(text) <= 200 else text[:200] + "…"
