"""The progress display on standard error while an image is read and analysed: the phase, a
bar, the percent and, for the read, the bytes done of the total (when the archive's size is
known; a pipe shows the bytes so far). Drawn by rich, imported only when a display is made
(``slimmer --help`` never loads it), and erased when it stops, also on an error or a Ctrl-C.
It appears only once a run has taken ``DELAY`` seconds, so a quick run or an early error line
stands alone. Knows nothing of archives: the reader calls ``expect(total)`` and then the
display with each chunk of bytes done; the analysis calls ``step(phase)``; a run over many
things (an audit's blobs and images) calls ``tally`` with how many of each stage are done.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from slimmer.render import clip, human

__all__ = ["DELAY", "Progress"]

DELAY = 0.3  # seconds before the display appears: a quick run (or a quick error) draws nothing


class Progress:
    """A live display of a read (``expect``, ``__call__``) and the analysis after it (``step``)."""

    def __init__(self, stream, what: str, phases: Sequence[str] = ()):
        from rich.console import Console
        from rich.progress import BarColumn, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Live

        console = Console(file=stream, highlight=False, soft_wrap=False)
        self._live = Live(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                          TaskProgressColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                          console=console, transient=True, redirect_stdout=False, redirect_stderr=True)
        name = "standard input" if what == "-" else os.path.basename(what.rstrip("/")) or what
        self._what = clip(name, 32)
        self._phases = tuple(phases)
        self._read: Any = None
        self._analysis: Any = None
        self._stage: tuple[str, Any] | None = None  # the stage ``tally`` shows, and its task
        self._total: int | None = None
        self._done = 0
        self._lock = threading.Lock()
        self._started = self._closed = False
        self._timer = threading.Timer(0, lambda: None)

    def __enter__(self) -> Progress:
        self._read = self._live.add_task(f"reading {self._what}", total=None, detail="")
        self._timer = threading.Timer(DELAY, self._start)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _start(self) -> None:
        with self._lock:
            if not self._closed and not self._started:
                self._live.start()
                self._started = True

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            self._closed = True
            if self._started:
                self._live.stop()

    def _refresh(self) -> None:
        if self._started:
            self._live.refresh()

    def expect(self, total: int) -> None:
        """The read will be ``total`` bytes."""
        self._total = (self._total or 0) + total
        self._live.update(self._read, total=self._total, detail=self._bytes())
        self._refresh()

    def __call__(self, n: int) -> None:
        """``n`` more bytes were read."""
        self._done += n
        self._live.update(self._read, completed=self._done, detail=self._bytes())
        self._refresh()  # each layer's step is drawn, however fast the next one comes

    def _bytes(self) -> str:
        return f"{human(self._done)} of {human(self._total)}" if self._total else human(self._done)

    def _end_read(self) -> None:
        if self._read is not None:
            if self._total:
                self._live.update(self._read, completed=self._total)
            self._live.remove_task(self._read)
            self._read = None

    def step(self, phase: str) -> None:
        """The analysis begins ``phase`` (one of the phases given)."""
        if self._analysis is None:
            self._end_read()
            self._analysis = self._live.add_task("analyzing", total=len(self._phases) or None, detail="")
        index = self._phases.index(phase) if phase in self._phases else 0
        self._live.update(self._analysis, completed=index, description=f"analyzing: {phase}",
                          detail=f"step {index + 1} of {len(self._phases)}" if self._phases else "")
        self._refresh()

    def tally(self, stage: str, done: int, total: int, unit: str, nbytes: int | None = None,
              total_bytes: int | None = None) -> None:
        """``done`` of ``total`` ``unit`` of ``stage`` are done (``stage`` such as "scanning
        layer blobs", ``unit`` such as "blobs"), and ``nbytes`` of ``total_bytes`` bytes when
        given: the bar then counts bytes. A new stage takes the place of what was shown."""
        if self._stage is None or self._stage[0] != stage:
            self._end_read()
            if self._stage is not None:
                self._live.remove_task(self._stage[1])
            self._stage = (stage, self._live.add_task(clip(stage, 40), total=None, detail=""))
        detail = f"{done} of {total} {unit}"
        if total_bytes:
            detail += f", {human(nbytes or 0)} of {human(total_bytes)}"
            self._live.update(self._stage[1], total=total_bytes, completed=nbytes or 0, detail=detail)
        else:
            self._live.update(self._stage[1], total=total or None, completed=done, detail=detail)
        self._refresh()
