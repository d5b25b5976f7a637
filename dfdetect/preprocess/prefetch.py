"""Decoding ahead: an iterator run in a thread, so that a video's next frames decode while the
face detector works on the last ones. OpenCV's decoder and torch's kernels release the GIL, so
the two overlap on two cores; the queue is bounded, so memory stays flat."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterator[T], depth: int = 8) -> Iterator[T]:
    """``items`` produced in a background thread, at most ``depth`` ahead of the consumer.
    An exception in the producer is raised in the consumer; closing the consumer early stops the
    producer (it finishes the item at hand and exits)."""
    if depth < 1:
        yield from items
        return
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failed(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()
        put(_DONE)

    thread = threading.Thread(target=produce, name="dfdetect-decode", daemon=True)
    thread.start()
    try:
        while True:
            value = out.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.exc
            yield value
    finally:
        stop.set()
        thread.join()
