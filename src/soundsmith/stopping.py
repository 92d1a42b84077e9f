"""Stop signals (SIGINT, SIGTERM) turned into exceptions only where Python can unwind.

A Python signal handler runs between two bytecodes of the main thread, wherever that is. During an import that is
often inside a C extension's initialisation (torch._C importing numpy) or a library's lazy-import hook: an exception
raised there either aborts the process (pybind11 turns it into a C++ exception nobody catches) or is swallowed and
re-raised as an ImportError, and the stop request is lost. So while any import is under way the signal is sent
again 50 ms later instead, until it lands in ordinary code and unwinds like Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import threading

REDELIVERY_S = 0.05


def unwinding(exception):
    """A signal handler raising `exception(signum)` (an exception instance) once no import is under way."""

    def handler(signum, frame):
        if _importing(frame):
            timer = threading.Timer(REDELIVERY_S, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        raise exception(signum)

    return handler


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def install(handlers: dict) -> dict:
    """Install {signum: handler} from the main thread (elsewhere nothing is installed); the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
