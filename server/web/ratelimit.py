"""A token bucket: how many messages one websocket connection may send, in a burst and over time."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``burst`` messages at once, refilled at ``rate`` a second; ``take`` says whether one more may pass."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
