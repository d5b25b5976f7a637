"""The gate's batcher: LitServe's batched loop with a batch collector that blocks instead of polling.

LitServe 0.2.19's collector (``loops/base.py: collate_requests``) spins on ``get_nowait`` when
``batch_timeout`` is 0 (a whole core and the worker's GIL taken from the prepare threads, for as
long as the server is up) and otherwise polls the queue every millisecond until the timeout has run
out, so at low load every request waits the full ``batch_timeout``. This collector waits, asleep,
for the first request; then takes what is already queued up to ``max_batch_size``; with
``batch_timeout`` > 0 it waits for more at most that long after the first request (LitServe's
meaning of the setting), asleep too. With ``batch_timeout: 0`` a batch is whatever queued while the
previous one ran: one request at low load (no wait for company), full batches under load."""

from __future__ import annotations

import time
from queue import Empty, Queue

from litserve import LitAPI
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.loops.simple_loops import BatchedLoop
from litserve.transport.base import MessageTransport
from litserve.utils import LitAPIStatus, LoopResponseType

# how long the collector sleeps on an empty queue before it looks again (a stop arrives as a sentinel)
IDLE_WAIT_S = 1.0


class BlockingBatchedLoop(BatchedLoop):
    def get_batch_requests(
        self, lit_api: LitAPI, request_queue: Queue, transport: MessageTransport
    ) -> tuple[list, list]:
        payloads: list = []
        timed_out: list = []
        try:
            first = request_queue.get(timeout=IDLE_WAIT_S)
        except Empty:
            return payloads, timed_out
        self._admit(first, lit_api, transport, payloads, timed_out)
        deadline = time.monotonic() + float(lit_api.batch_timeout)
        while len(payloads) + len(timed_out) < lit_api.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                request = (
                    request_queue.get(timeout=remaining) if remaining > 0 else request_queue.get_nowait()
                )
            except Empty:
                break
            self._admit(request, lit_api, transport, payloads, timed_out)
        return payloads, timed_out

    def _admit(self, request, lit_api: LitAPI, transport: MessageTransport, payloads: list, timed_out: list):
        """What LitServe's collector does with each request: stop on the sentinel, tell the server the
        request started, and set aside a request that waited past the server's timeout."""
        if request == _SENTINEL_VALUE:
            raise _StopLoopError()
        response_queue_id, uid, timestamp, x_enc = request
        self.put_response(
            transport=transport,
            response_queue_id=response_queue_id,
            uid=uid,
            response_data=(),
            status=LitAPIStatus.START,
            response_type=LoopResponseType.STREAMING if lit_api.stream else LoopResponseType.REGULAR,
        )
        expired = lit_api.request_timeout not in (-1, False, None) and (
            time.monotonic() - timestamp > lit_api.request_timeout
        )
        if expired:
            timed_out.append((response_queue_id, uid))
        else:
            payloads.append((response_queue_id, uid, x_enc))
