"""Log lines for events a flood repeats thousands of times a second (refusals, hang-ups, timeouts).

One line per event would let a hostile client fill the disk and slow the event loop; none would
hide the attack. So: the first event of a kind is logged at once, later ones at most every
`every_s` seconds, each line saying how many were folded into it; events folded after the last
line are summed up in one more line `every_s` later (when an event loop runs), so a flood that
stops still shows its full count.
"""

from __future__ import annotations

import asyncio
import logging
import time


class ThrottledLog:
    def __init__(self, logger: logging.Logger, every_s: float = 10.0):
        self.logger = logger
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}
        self._latest: dict[str, tuple[str, tuple]] = {}  # kind -> the last folded event's line
        self._flush_due: set[str] = set()
        self.counts: dict[str, int] = {}  # events per kind since start (tests, metrics)

    def warning(self, kind: str, message: str, *args) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            self._folded[kind] = self._folded.get(kind, 0) + 1
            self._latest[kind] = (message, args)
            self._schedule_flush(kind, now)
            return
        self._emit(kind, message, args, now)

    def reset(self) -> None:
        """Forget what was logged and folded, so the next event of every kind gets its line at once."""
        self._last.clear()
        self._folded.clear()
        self._latest.clear()

    def _emit(self, kind: str, message: str, args: tuple, now: float) -> None:
        folded = self._folded.pop(kind, 0)
        self._latest.pop(kind, None)
        self._last[kind] = now
        suffix = f" (+{folded} more since the last such line)" if folded else ""
        self.logger.warning(message + suffix, *args)

    def _schedule_flush(self, kind: str, now: float) -> None:
        if kind in self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test, a thread): the next event of the kind reports them
            return
        self._flush_due.add(kind)
        loop.call_later(self._last[kind] + self.every_s - now, self._flush, kind)

    def _flush(self, kind: str) -> None:
        self._flush_due.discard(kind)
        if kind in self._latest:
            message, args = self._latest[kind]
            self._emit(kind, message, args, time.monotonic())
