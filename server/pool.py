"""A process pool that heals: when one of its processes dies, the pool is replaced by a fresh one.

A ``ProcessPoolExecutor`` whose process is killed (SIGKILL, the out-of-memory killer) is broken for good:
every later call fails at once with ``BrokenProcessPool``. :class:`WorkerPool` is an executor in front of
one: the calls that were running or waiting when a process died fail with :class:`WorkerDied`, the broken
executor is replaced once (however many callers saw it break), and the next call runs in a fresh process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

NICENESS = 10
"""How much lower than the server a pool's processes run (``os.nice``)."""

P = ParamSpec("P")
T = TypeVar("T")


class WorkerDied(RuntimeError):
    """The process running a call died (killed, out of memory); the pool has been replaced by a fresh one."""


class WorkerPool(Executor):
    """``processes`` spawned processes for the heavy work, replaced when one of them dies.

    ``spawn``: never fork a process that runs an event loop and threads. ``niceness``: the processes run
    below the server's own priority, so that on a small machine a render or a large publish holding a core
    does not delay the event loop's answers (a 100,000-scene publish held ``/healthz`` up to 115 ms without).
    """

    def __init__(self, processes: int, name: str = "pool", niceness: int = NICENESS) -> None:
        self.processes = processes
        self.name = name
        self.niceness = niceness
        self.replaced = 0
        """How many times a broken executor was replaced."""
        self._lock = threading.Lock()
        self._closed = False
        self._executor = self._fresh()

    def _fresh(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=os.nice, initargs=(self.niceness,),
        )

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name} is closed")
            executor = self._executor
        # Not under the lock: the executor's own thread may be calling back into this pool (``_settle``).
        try:
            inner = executor.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            # It broke under someone else's call, and nobody has replaced it yet: this call is not to blame.
            with self._lock:
                executor = self._replace(executor)
            inner = executor.submit(fn, *args, **kwargs)
        _watch_new_processes(executor)
        outer: Future[T] = Future()
        outer.add_done_callback(lambda done: inner.cancel() if done.cancelled() else None)
        inner.add_done_callback(lambda done: self._settle(executor, done, outer))
        return outer

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args)`` in a pool process; raises :class:`WorkerDied` if that process dies."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def _settle(self, executor: ProcessPoolExecutor, inner: Future[T], outer: Future[T]) -> None:
        """Pass ``inner``'s outcome on to ``outer``; a broken pool is replaced and reported as :class:`WorkerDied`."""
        try:
            if inner.cancelled():
                outer.cancel()
                return
            error = inner.exception()
            if isinstance(error, BrokenProcessPool):
                with self._lock:
                    self._replace(executor)
                outer.set_exception(WorkerDied(f"a process of the {self.name} died while running this call"))
            elif error is not None:
                outer.set_exception(error)
            else:
                outer.set_result(inner.result())
        except InvalidStateError:
            pass  # the caller gave up on ``outer`` (cancelled it) while the call ran

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """Replace ``broken`` unless that was done already; the caller holds the lock."""
        if self._executor is broken and not self._closed:
            # The broken one has failed its calls and terminated its processes itself.
            self._executor = self._fresh()
            self.replaced += 1
        return self._executor

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop now when ``wait`` is false: a job cut short is leased, so another worker redoes it."""
        with self._lock:
            self._closed = True
            executor = self._executor
        if wait:
            executor.shutdown(wait=True, cancel_futures=cancel_futures)
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())  # no public way before 3.14
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()

    def close(self) -> None:
        """Stop now: kill what is running (a job cut short comes back to the queue); waiting could take minutes."""
        self.shutdown(wait=False)


def _watch_new_processes(executor: ProcessPoolExecutor) -> None:
    """Make the executor's thread watch a process ``submit`` just started, so that its death is noticed.

    ``submit`` wakes that thread before it spawns a process (CPython 3.11-3.13): the thread may go back to
    waiting on the old processes only, and a new one killed at once would go unnoticed until another call
    ends. A second wake-up, after the spawn, makes it look again.
    """
    wakeup = getattr(executor, "_executor_manager_thread_wakeup", None)  # no public way
    lock = getattr(executor, "_shutdown_lock", None)
    if wakeup is not None and lock is not None:
        with lock, contextlib.suppress(OSError, ValueError):  # closed: the executor is shutting down or broken
            wakeup.wakeup()
