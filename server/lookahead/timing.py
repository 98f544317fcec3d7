"""When viewers choose: seconds after a scene's choice window opens, learned from their choices.

Until ``Tuning.choice_samples`` choices are seen, the priors stand (``choice_s``, give or take
``decision_grace_s``); then the latest ``choice_memory`` choices tell when the earliest
(``early_quantile``) and a typical (``typical_quantile``) viewer choose.
"""

from __future__ import annotations

import bisect
from collections import deque

from reelfork.server.lookahead.tuning import Tuning
from reelfork.server.lookahead.wants import Window


class ChoiceTiming:
    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning
        self._delays: deque[float] = deque(maxlen=tuning.choice_memory)
        """Seconds after their window opened that viewers chose (the default: when it closed)."""
        self._quantiles: tuple[float, float] | None = None
        self._sorted: list[float] = []
        self._seen = 0

    def observe(self, seconds: float) -> None:
        """A viewer chose ``seconds`` after the choices were offered."""
        self._delays.append(seconds)
        self._seen += 1
        # Sorting a thousand delays for every choice would cost more than it tells: every 16th will do.
        if self._seen % 16 == 0 or len(self._delays) <= self.tuning.choice_samples:
            self._quantiles = None

    def learned(self) -> bool:
        return len(self._delays) >= max(1, self.tuning.choice_samples)

    def delays(self) -> tuple[float, float]:
        """Seconds after a window opens that the earliest and a typical viewer choose."""
        if not self.learned():
            return self.tuning.choice_s, self.tuning.choice_s + self.tuning.decision_grace_s
        if self._quantiles is None:
            ordered = self._sorted = sorted(self._delays)
            last = len(ordered) - 1
            early = ordered[round(self.tuning.early_quantile * last)]
            typical = ordered[round(self.tuning.typical_quantile * last)]
            self._quantiles = (early, max(early, typical))
        return self._quantiles

    def still_watching(self, window: Window, at_s: float) -> float:
        """How likely a viewer still watches a scene ``at_s`` seconds into it, choosing in ``window``: all do
        until the earliest choose; then those who have not chosen yet (learned; half, until choices tell)."""
        early, _ = self.delays()
        after = at_s - window.opens_at
        if after <= early:
            return 1.0
        if not self._sorted or not self.learned():
            return 0.5
        later = len(self._sorted) - bisect.bisect_right(self._sorted, after)
        return max(later / len(self._sorted), 0.01)
