"""Bounded image work: decoding, hashing and C2PA calls off the event loop.

The work runs in a thread pool of its own, so a burst of large images cannot starve the
loop's default executor (which DNS lookups and the database driver share). A thread cannot
be interrupted: on timeout the caller gets an error at once, but the thread's slot stays
taken until the work really ends, so slow or hostile images never run more than
``threads`` at a time however many requests time out.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from registry.provenance.errors import ImageWorkBusy, ImageWorkTimeout

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BoundedWork"]

T = TypeVar("T")


class BoundedWork:
    """At most ``threads`` jobs at once; each waits at most ``timeout`` for a slot and then
    at most ``timeout`` to finish."""

    def __init__(self, *, threads: int, timeout: float) -> None:
        self.threads = threads
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="image-work")
        self._slots = asyncio.Semaphore(threads)

    async def run(self, fn: Callable[..., T], /, *args: object) -> T:
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self.timeout)
            except TimeoutError:
                raise ImageWorkBusy(
                    f"no image worker became free within {self.timeout:g} s; try again"
                ) from None
        else:
            # A free slot is taken at once, whatever the time bound.
            await self._slots.acquire()
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            raise ImageWorkTimeout(
                f"the image took longer than {self.timeout:g} s to process"
            ) from None

    def _finished(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        # A job whose caller timed out still ends; its outcome is read here so it is not
        # reported as an exception nobody retrieved.
        if not future.cancelled():
            future.exception()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
