"""Worker threads for plain ``def`` handlers.

``asyncio.to_thread`` runs in the loop's default executor, and ``asyncio.run`` joins that
executor's threads when it ends (``loop.shutdown_default_executor``); so does the interpreter
for every :class:`concurrent.futures.ThreadPoolExecutor`. A blocking handler that a shutdown
cut would then still hold the process for as long as it runs. Python cannot interrupt a
thread, so these threads are daemon threads that nobody joins: a handler cut by shutdown is
abandoned in its thread and its result discarded, and the process can exit.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

_Work = tuple[
    asyncio.AbstractEventLoop,
    asyncio.Future[Any],
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]


class WorkerThreads:
    """A pool of daemon threads; :meth:`run` awaits a call in one of them.

    Sized like the default executor (``min(32, cpu_count + 4)``); threads start on demand and
    stay for the next call. The caller's ``contextvars`` are copied into the thread, as with
    ``asyncio.to_thread``, so ``bollydog.globals`` work in plain handlers.
    """

    def __init__(self, max_workers: int | None = None, name: str = "bollydog-sync") -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self.name = name
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # released by a worker each time it waits for work
        self._lock = threading.Lock()
        self._threads = 0

    async def run(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)`` in a worker thread. Cancelling the await abandons the call:
        it runs on (it cannot be stopped) and its outcome is dropped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._work.put((loop, future, contextvars.copy_context(), func, args, kwargs))
        self._ensure_worker()
        return await future

    def _ensure_worker(self) -> None:
        if self._idle.acquire(blocking=False):
            return  # a waiting worker takes it
        with self._lock:
            if self._threads >= self.max_workers:
                return  # queued until a worker is free
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._worker, name=f"{self.name}-{number}", daemon=True).start()

    def _worker(self) -> None:
        while True:
            loop, future, context, func, args, kwargs = self._work.get()
            if not future.cancelled():  # abandoned before it started: skip it
                try:
                    outcome = (True, context.run(func, *args, **kwargs))
                except BaseException as exc:  # handed to the awaiting task, like to_thread does
                    outcome = (False, exc)
                try:
                    loop.call_soon_threadsafe(_settle, future, outcome)
                except RuntimeError:
                    pass  # the loop is closed: nobody waits for this result any more
                del outcome
            del loop, future, context, func, args, kwargs
            self._idle.release()


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # cancelled: the caller gave up on it
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


#: The pool shared by every hub of the process.
worker_threads = WorkerThreads()
