"""Comparing variants' rates: Wilson score intervals, and a pooled two-proportion z-test (two-sided).

A winner is named only when the best variant's rate beats every other's with p below ``alpha`` divided by
the number of comparisons (Bonferroni), so trying more variants does not make a false winner likelier.
The interval of a difference is Newcombe's hybrid score interval (from the two Wilson intervals).
"""

from __future__ import annotations

import math

from pydantic import BaseModel
from scipy.stats import binomtest, norm

CONFIDENCE = 0.95
ALPHA = 0.05


class Rate(BaseModel):
    successes: int
    trials: int
    rate: float | None
    """``successes / trials``; null without trials."""
    low: float | None
    high: float | None
    """The Wilson score interval at 95%."""


class Difference(BaseModel):
    """``rate(a) - rate(b)`` with Newcombe's 95% interval and the two-sided p-value of the z-test."""

    difference: float
    low: float
    high: float
    p_value: float


def rate(successes: int, trials: int, confidence: float = CONFIDENCE) -> Rate:
    if trials <= 0:
        return Rate(successes=0, trials=0, rate=None, low=None, high=None)
    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Rate(successes=successes, trials=trials, rate=successes / trials,
                low=float(interval.low), high=float(interval.high))


def difference(a: Rate, b: Rate) -> Difference | None:
    """How much ``a``'s rate exceeds ``b``'s; ``None`` unless both have trials."""
    if a.rate is None or b.rate is None or a.low is None or a.high is None or b.low is None or b.high is None:
        return None
    delta = a.rate - b.rate
    low = delta - math.sqrt((a.rate - a.low) ** 2 + (b.high - b.rate) ** 2)
    high = delta + math.sqrt((a.high - a.rate) ** 2 + (b.rate - b.low) ** 2)
    pooled = (a.successes + b.successes) / (a.trials + b.trials)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials))
    p_value = 1.0 if spread == 0 else float(2 * norm.sf(abs(delta) / spread))
    return Difference(difference=delta, low=low, high=high, p_value=p_value)


def winner(rates: dict[str, Rate], alpha: float = ALPHA) -> str | None:
    """The variant whose rate is significantly above every other's (Bonferroni-corrected), or ``None``."""
    measured = {name: r for name, r in rates.items() if r.rate is not None}
    if len(measured) < 2 or len(measured) != len(rates):
        return None
    best = max(measured, key=lambda name: measured[name].rate or 0.0)
    threshold = alpha / (len(measured) - 1)
    for name, other in measured.items():
        if name == best:
            continue
        compared = difference(measured[best], other)
        if compared is None or compared.difference <= 0 or compared.p_value >= threshold:
            return None
    return best
