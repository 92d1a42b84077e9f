"""Local workers: one spawned process per slot, each holding its model, fed one line at a time through a pipe.

The pool interface (shared with cluster.RayPool): `idle()` slots ready for a line, `submit(slot, item)`,
`wait(timeout)` → events ("done", slot, item, result) / ("died", slot, item, why), `alive()` slots still in use,
`labels`, `close(now)`. A worker process that dies is started again (its line goes back to the driver); a slot
whose process dies MAX_STRIKES times in a row without finishing a line is retired.
"""

import multiprocessing
from multiprocessing.connection import wait as wait_for

from .worker import Setup, serve

MAX_STRIKES = 3


class LocalPool:
    def __init__(self, setups: list[Setup]):
        self.context = multiprocessing.get_context("spawn")  # no fork: torch's threads and CUDA do not survive it
        self.setups = setups
        self.labels = [s.name for s in setups]
        self.processes = [None] * len(setups)
        self.connections = [None] * len(setups)
        self.busy: dict[int, object] = {}
        self.strikes = [0] * len(setups)
        self.retired: set[int] = set()
        for slot in range(len(setups)):
            self._start(slot)

    def _start(self, slot: int) -> None:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=serve, args=(theirs, self.setups[slot]), name=self.labels[slot])
        process.start()
        theirs.close()
        self.processes[slot], self.connections[slot] = process, ours

    def idle(self) -> list[int]:
        return [s for s in range(len(self.setups)) if s not in self.busy and s not in self.retired]

    def alive(self) -> int:
        return len(self.setups) - len(self.retired)

    def submit(self, slot: int, item) -> None:
        self.busy[slot] = item
        try:
            self.connections[slot].send((item.line, item.request.to_dict()))
        except (BrokenPipeError, OSError):
            pass  # the process is gone: wait() sees its sentinel and reports the line

    def wait(self, timeout: float) -> list[tuple]:
        if not self.busy:
            return []
        by_connection = {self.connections[s]: s for s in self.busy}
        by_sentinel = {self.processes[s].sentinel: s for s in self.busy}
        ready = wait_for([*by_connection, *by_sentinel], timeout)
        events = []
        for handle in ready:
            slot = by_connection.get(handle)
            if slot is None or slot not in self.busy:
                continue
            try:
                result = handle.recv()
            except (EOFError, OSError):
                continue  # died mid-reply: reported through the sentinel below
            self.strikes[slot] = 0
            events.append(("done", slot, self.busy.pop(slot), result))
        for handle in ready:
            slot = by_sentinel.get(handle)
            if slot is None or slot not in self.busy:
                continue
            process = self.processes[slot]
            process.join(5)
            code = process.exitcode
            why = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
            events.append(("died", slot, self.busy.pop(slot), why))
            self.connections[slot].close()
            self.strikes[slot] += 1
            if self.strikes[slot] >= MAX_STRIKES:
                self.retired.add(slot)
            else:
                self._start(slot)
        return events

    def close(self, now: bool = False) -> None:
        """Stop the workers: ask them to finish (or, `now`, terminate them) and wait for them."""
        for slot, process in enumerate(self.processes):
            if process is None or not process.is_alive():
                continue
            if now:
                process.terminate()
            else:
                try:
                    self.connections[slot].send(None)
                except (BrokenPipeError, OSError):
                    pass
        for process in self.processes:
            if process is None:
                continue
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        for connection in self.connections:
            if connection is not None:
                connection.close()
