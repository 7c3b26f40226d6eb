"""Log lines for events a flood repeats thousands of times a second (hang-ups, timeouts, caps hit).

One line per event would let a hostile client fill the disk and slow the event loop; none would
hide the attack. So: the first event of a kind is logged at once, later ones at most every
`every_s` seconds, each line saying how many were folded into it.
"""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    def __init__(self, logger: logging.Logger, every_s: float = 10.0):
        self.logger = logger
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}
        self.counts: dict[str, int] = {}  # events per kind since start (tests, metrics)

    def warning(self, kind: str, message: str, *args) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            self._folded[kind] = self._folded.get(kind, 0) + 1
            return
        folded = self._folded.pop(kind, 0)
        self._last[kind] = now
        suffix = f" (+{folded} more since the last such line)" if folded else ""
        self.logger.warning(message + suffix, *args)
