"""Segments held back until shortly before they must start (``Tuning.hold_s``): when each may start."""

from __future__ import annotations

import heapq
from collections.abc import Callable


class Holds:
    """The holds on jobs, each by its key until its release time (epoch or clock seconds), earliest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._release: dict[str, float] = {}
        """Job key → its current release (older ones stay in the heap until they surface)."""

    def hold(self, key: str, release: float) -> None:
        """Hold ``key`` until ``release`` (a later call moves it)."""
        if self._release.get(key) != release:
            self._release[key] = release
            heapq.heappush(self._heap, (release, key))

    def next(self) -> float | None:
        """The earliest release held, as of the last :meth:`over`."""
        return self._heap[0][0] if self._heap else None

    def over(self, now: float, release_of: Callable[[str], float | None]) -> list[str]:
        """The keys whose hold is over by ``now``, earliest first, forgotten. ``release_of`` says a key's release
        as it stands (None: not held any more): a hold whose job changed since is moved, or forgotten."""
        released: list[str] = []
        while self._heap:
            release, key = self._heap[0]
            if self._release.get(key) != release:
                heapq.heappop(self._heap)  # moved by a later hold()
                continue
            current = release_of(key)
            if current == release and release > now:
                break
            heapq.heappop(self._heap)
            del self._release[key]
            if current is not None and current > now:
                self.hold(key, current)
            elif current is not None:
                released.append(key)
        return released
