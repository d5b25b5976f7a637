"""A measurement run: plan every call the pairs need, skip what the cache already holds, estimate
the cost, then send the rest through a provider client with rate limiting, retries and a spending
guard, caching each answer (one transaction per call) as it arrives.

Per pair (X_D fake, X_T real): ``recognize`` on both images and, where the provider has a face
similarity API, ``compare`` (X_T, X_D). Calls are keyed by the sha256 of the source image files
and the call parameters (which include the crop), so a rerun skips every call already answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from dfdetect.measure.cache import ApiCache
from dfdetect.measure.cost import BudgetExceeded, CostMeter, tier_cost
from dfdetect.measure.credentials import is_auth_failure
from dfdetect.measure.journal import CallJournal, CallKey, call_key
from dfdetect.measure.pairs import Pair
from dfdetect.measure.providers.base import TRANSIENT_PREFIX, ApiClient, is_transient_code
from dfdetect.measure.ratelimit import Backoff
from dfdetect.measure.records import ApiResult
from dfdetect.measure.registry import get_provider
from dfdetect.utils.io import file_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    provider: str
    operation: str
    image_sha256: str
    ref_sha256: str
    params: tuple  # sorted (key, value) items, hashable
    image_path: Path
    ref_path: Path | None = None

    @property
    def key(self) -> CallKey:
        return call_key(self.provider, self.operation, self.image_sha256, self.ref_sha256, dict(self.params))


@dataclass
class RunOptions:
    provider: str
    crop_tag: str = "none"
    concurrency: int = 2
    max_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    price_tiers: list = field(default_factory=lambda: [[None, 1.0]])
    calls_this_month: int = 0
    max_cost: float | None = None
    resend_in_flight: bool = False
    retry_client_errors: bool = False
    compare_params: dict = field(default_factory=dict)
    progress: bool = True


@dataclass
class Plan:
    tasks: list[Task]
    to_send: list[Task]
    cached: int = 0
    client_errors_kept: int = 0
    transient_errors_resent: int = 0
    auth_errors_resent: int = 0
    in_flight_skipped: list[Task] = field(default_factory=list)
    in_flight_resent: int = 0
    requests: int = 0
    cost_usd: float = 0.0

    def by_operation(self) -> dict[str, dict[str, int]]:
        total = Counter(t.operation for t in self.tasks)
        send = Counter(t.operation for t in self.to_send)
        return {op: {"calls": total[op], "to_send": send[op]} for op in sorted(total)}

    def lines(self, provider: str) -> list[str]:
        out = [
            f"{provider}: {len(self.tasks)} calls needed, {self.cached} cached, {len(self.to_send)} to send"
        ]
        for op, n in self.by_operation().items():
            out.append(f"  {op:9s} {n['calls']:7d} needed {n['to_send']:7d} to send")
        out.append(
            f"  estimated cost: {self.requests} billable requests = {self.cost_usd:.4f} USD (paper §5.2 prices)"
        )
        if self.transient_errors_resent:
            out.append(
                f"  {self.transient_errors_resent} calls that failed transiently before are sent again"
            )
        if self.auth_errors_resent:
            out.append(
                f"  {self.auth_errors_resent} calls whose credentials were refused before (HTTP 401 / 403)"
                " are sent again"
            )
        if self.client_errors_kept:
            out.append(
                f"  {self.client_errors_kept} calls ended in a client error before and are kept"
                " (attack.retry_client_errors=true sends them again)"
            )
        if self.in_flight_skipped:
            out.append(
                f"  {len(self.in_flight_skipped)} calls were in flight when an earlier run died: they may have been"
                " billed without an answer; not sent again (attack.resend_in_flight=true sends them)"
            )
        if self.in_flight_resent:
            out.append(f"  {self.in_flight_resent} calls in flight when an earlier run died are sent again")
        if not get_provider(provider).has_similarity:
            out.append(f"  similarity: unavailable for {provider} (no face-similarity API), not 0")
        return out


def hash_images(pairs: Iterable[Pair]) -> dict[Path, str]:
    shas: dict[Path, str] = {}
    for pair in pairs:
        for path in (pair.fake_path, pair.real_path):
            if path not in shas:
                shas[path] = file_sha256(path)
    return shas


def register_images(cache: ApiCache, pairs: list[Pair], shas: dict[Path, str]) -> None:
    rows = {}
    for p in pairs:
        rows[(p.dataset, p.fake_key)] = (shas[p.fake_path], 1, p.identity, p.source_identity)
        rows[(p.dataset, p.real_key)] = (shas[p.real_path], 0, p.identity, p.identity)
    cache.add_images(
        pd.DataFrame(
            [(d, k, *v) for (d, k), v in rows.items()],
            columns=["dataset", "image_key", "sha256", "label", "identity", "source_identity"],
        )
    )


def build_tasks(pairs: list[Pair], shas: dict[Path, str], opts: RunOptions) -> list[Task]:
    params = (("crop", opts.crop_tag),)
    compare_params = tuple(sorted({"crop": opts.crop_tag, **opts.compare_params}.items()))
    tasks: dict[CallKey, Task] = {}
    for p in pairs:
        for path in (p.fake_path, p.real_path):
            t = Task(opts.provider, "recognize", shas[path], "", params, path)
            tasks.setdefault(t.key, t)
        if get_provider(opts.provider).has_similarity:
            t = Task(
                opts.provider,
                "compare",
                shas[p.fake_path],
                shas[p.real_path],
                compare_params,
                p.fake_path,
                p.real_path,
            )
            tasks.setdefault(t.key, t)
    return list(tasks.values())


def plan_run(cache: ApiCache, journal: CallJournal, tasks: list[Task], opts: RunOptions) -> Plan:
    calls = cache.calls(opts.provider)
    stored = {
        (r.provider, r.operation, r.image_sha256, r.ref_sha256, r.params_json): (r.status, r.error_code)
        for r in calls.itertuples(index=False)
    }
    pending = journal.pending(opts.provider)
    plan = Plan(tasks=tasks, to_send=[])
    for task in tasks:
        status, code = stored.get(task.key, (None, None))
        if status in ("ok", "no_face"):
            plan.cached += 1
            continue
        if status == "error":
            if is_transient_code(code):
                plan.transient_errors_resent += 1
            elif is_auth_failure(opts.provider, None, code):  # cached by an older version
                plan.auth_errors_resent += 1
            elif not opts.retry_client_errors:
                plan.cached += 1
                plan.client_errors_kept += 1
                continue
        elif task.key in pending:
            if not opts.resend_in_flight:
                plan.in_flight_skipped.append(task)
                continue
            plan.in_flight_resent += 1
        plan.to_send.append(task)
    per_call = get_provider(opts.provider).requests_per_call
    plan.requests = sum(per_call[t.operation] for t in plan.to_send)
    plan.cost_usd = tier_cost(plan.requests, opts.price_tiers, opts.calls_this_month)
    return plan


@dataclass
class RunStats:
    """What a run did. ``sent``: calls answered and cached (``statuses``, and the error codes of
    those that ended in an error); ``refused``: calls whose credentials the provider refused (not
    cached, not billed; ``refused_operations``, the provider's ``auth_message``)."""

    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    error_codes: Counter = field(default_factory=Counter)
    requests: int = 0
    spent_usd: float = 0.0
    stopped: str = ""
    refused: int = 0
    refused_operations: Counter = field(default_factory=Counter)
    auth_message: str = ""


class Executor:
    """Sends the planned calls; ``image_bytes(path, sha)`` gives what is uploaded; ``redact``
    scrubs secrets from raw responses, error codes and messages before they are stored.

    A call the provider refuses for its credentials (HTTP 401 / 403) is not cached (a rerun with
    the right key sends it) and not billed, and stops the run: no further call starts."""

    def __init__(
        self,
        client: ApiClient,
        cache: ApiCache,
        journal: CallJournal,
        meter: CostMeter,
        opts: RunOptions,
        image_bytes: Callable[[Path, str], bytes],
        sleep: Callable[[float], None] = time.sleep,
        redact: Callable = lambda value: value,
    ):
        self.client, self.cache, self.journal, self.meter = client, cache, journal, meter
        self.opts = opts
        self.image_bytes = image_bytes
        self.sleep = sleep
        self.redact = redact
        self.stop = threading.Event()
        self.stats = RunStats()
        self._lock = threading.Lock()

    def _attempt(self, task: Task):
        image = self.image_bytes(task.image_path, task.image_sha256)
        if task.operation == "recognize":
            return self.client.recognize(image)
        return self.client.compare(image, self.image_bytes(task.ref_path, task.ref_sha256))

    def _record(self, task: Task, result: ApiResult, outcome, latency: float, attempts: int) -> None:
        if result.error_code is not None:
            result = replace(result, error_code=self.redact(result.error_code))
        self.cache.record_call(
            result,
            task.image_sha256,
            task.ref_sha256,
            dict(task.params),
            raw=self.redact(outcome.raw),
            latency_s=round(latency, 4),
            attempts=attempts,
        )
        self.journal.finish(task.key)
        with self._lock:
            self.stats.sent += 1
            self.stats.statuses[result.status] += 1
            if result.status == "error":
                self.stats.error_codes[str(result.error_code)] += 1

    def _refused(self, task: Task, outcome, per_call: int) -> None:
        """Credentials refused: nothing cached or billed, the journal row dropped, the run stopped."""
        self.meter.refund(per_call)
        self.journal.finish(task.key)
        self.stop.set()
        with self._lock:
            self.stats.refused += 1
            self.stats.refused_operations[task.operation] += 1
            if not self.stats.auth_message:
                status = outcome.code or (outcome.result.error_code if outcome.result else "")
                self.stats.auth_message = self.redact(
                    ": ".join(str(s) for s in (status, outcome.message) if s) or "refused"
                )

    def run_task(self, task: Task) -> None:
        if self.stop.is_set():
            return
        per_call = get_provider(task.provider).requests_per_call[task.operation]
        attempts, outcome, latency = 0, None, 0.0
        while True:
            try:
                self.meter.charge(per_call)
            except BudgetExceeded:
                self.stop.set()
                if outcome is not None:  # answered, transiently: record what we have
                    failed = ApiResult(
                        task.provider, task.operation, "error", error_code=TRANSIENT_PREFIX + outcome.code
                    )
                    self._record(task, failed, outcome, latency, attempts)
                raise
            if attempts == 0:
                self.journal.start(task.key)
            attempts += 1
            t0 = time.perf_counter()
            outcome = self._attempt(task)
            latency = time.perf_counter() - t0
            if outcome.auth_failed:
                self._refused(task, outcome, per_call)
                return
            if not outcome.transient:
                self._record(task, outcome.result, outcome, latency, attempts)
                return
            if attempts >= self.opts.max_attempts:
                failed = ApiResult(
                    task.provider, task.operation, "error", error_code=TRANSIENT_PREFIX + outcome.code
                )
                log.warning(
                    "%s %s %s: giving up after %d attempts (%s)",
                    task.provider,
                    task.operation,
                    task.image_sha256[:12],
                    attempts,
                    outcome.code,
                )
                self._record(task, failed, outcome, latency, attempts)
                return
            delay = self.opts.backoff.delay(attempts, outcome.retry_after_s)
            log.info(
                "%s %s: %s, retry %d in %.2f s", task.provider, task.operation, outcome.code, attempts, delay
            )
            self.sleep(delay)

    def run(self, tasks: list[Task]) -> RunStats:
        progress = None
        if self.opts.progress:
            from tqdm import tqdm

            progress = tqdm(total=len(tasks), desc=f"{self.opts.provider} calls", unit="call")
        pool = ThreadPoolExecutor(max_workers=max(1, int(self.opts.concurrency)))
        futures = [pool.submit(self.run_task, t) for t in tasks]
        if progress is not None:
            for f in futures:
                f.add_done_callback(lambda _f: progress.update(1))
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:  # an error or Ctrl-C: start nothing new, let the calls under way finish and be cached
            self.stop.set()
            for f in futures:
                f.cancel()
            pool.shutdown(wait=True)
        errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
        if progress is not None:
            progress.close()
        self.stats.requests, self.stats.spent_usd = self.meter.requests, round(self.meter.spent, 6)
        budget = [e for e in errors if isinstance(e, BudgetExceeded)]
        others = [e for e in errors if not isinstance(e, BudgetExceeded)]
        if others:
            raise others[0]
        if budget:
            self.stats.stopped = str(budget[0])
        return self.stats
