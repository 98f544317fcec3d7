"""How likely a viewer who reaches a paywall unlocks it: each paywall's tally, with a prior."""

from __future__ import annotations

from reelfork.server.lookahead.tuning import Tuning


class Unlocks:
    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning
        self._tallies: dict[str, tuple[int, int]] = {}
        """Paywall (the story) → viewers who chose into it, and of them those who went on."""

    def count(self, paywall: str, reached: int, unlocked: int) -> None:
        """``reached`` more viewers chose into ``paywall`` without an entitlement; ``unlocked`` more went on."""
        seen, went_on = self._tallies.get(paywall, (0, 0))
        self._tallies[paywall] = (seen + reached, went_on + unlocked)

    def rate(self, paywall: str) -> float:
        """The observed rate, with a prior of ``Tuning.unlock_rate`` worth ``Tuning.unlock_prior`` viewers."""
        reached, unlocked = self._tallies.get(paywall, (0, 0))
        prior = self.tuning.unlock_prior
        rate = (unlocked + prior * self.tuning.unlock_rate) / (reached + prior) if reached + prior > 0 else 0.0
        return min(1.0, max(0.0, rate))
