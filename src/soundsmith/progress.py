"""soundsmith's own progress: one line per stage on stderr, each with its time.

    soundsmith: loading demo (AudioLDM on cpu) 0.41 s
    soundsmith: text 0.02 s
    soundsmith: denoising 25/25 steps 1.83 s
    soundsmith: decoding 0.21 s
    soundsmith: loudness -16 LUFS 0.03 s
    soundsmith: writing dog.wav 0.01 s

On a terminal a stage's line appears when the stage starts and is completed in place (denoising counts its steps
as they go); written to a file or a pipe, each line is written once, when its stage ends. The CLI, `soundsmith.load`,
the pipelines' calls and `soundsmith.edit` show these lines unless progress=False; the engine alone (serve, batch)
shows none unless asked. Third-party progress is silenced elsewhere (quiet.py).
"""

import contextlib
import sys
import time

REDRAW_S = 0.1  # a terminal line is redrawn at most this often


class Stage:
    """One stage's line. `detail` is shown after the name; `steps(done, total)` counts steps."""

    def __init__(self, name: str, enabled: bool, stream=None):
        self.name, self.enabled, self.detail = name, enabled, ""
        self.stream = stream or sys.stderr
        self.live = enabled and _is_terminal(self.stream)
        self.started = self.drawn = time.perf_counter()
        if self.live:
            self._draw(f"{name} …")

    def steps(self, done: int, total: int) -> None:
        self.detail = f"{done}/{total} steps"
        now = time.perf_counter()
        if self.live and (now - self.drawn >= REDRAW_S or done == total):
            self.drawn = now
            self._draw(self._text(now))

    def end(self) -> None:
        if self.enabled:
            self._draw(self._text(time.perf_counter()), end="\n")

    def abandon(self) -> None:
        """The stage failed: a terminal line is finished so an error starts on a line of its own."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()

    def _text(self, now: float) -> str:
        return f"{self.name}{' ' + self.detail if self.detail else ''} {now - self.started:.2f} s"

    def _draw(self, text: str, end: str = "") -> None:
        self.stream.write(("\r\033[K" if self.live else "") + f"soundsmith: {text}{end}")
        self.stream.flush()


@contextlib.contextmanager
def stage(name: str, enabled: bool = True, stream=None):
    """A block timed and shown as one line (see the module docstring); nothing is shown when not enabled."""
    line = Stage(name, enabled, stream)
    try:
        yield line
    except BaseException:
        line.abandon()
        raise
    line.end()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
