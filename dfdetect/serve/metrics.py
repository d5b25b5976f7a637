"""Prometheus metrics of the gate, kept in the API server process (the workers' figures come back
with each answer: queue wait, batch size, stage timings), so no multiprocess mode is needed.

No metric reveals one request's score: P(fake) is counted in five coarse bands without a sum, and
only for trusted keys (who see the score in their answer anyway). An untrusted client reading
``/metrics`` around its own request learns its verdict, which it was answered, and nothing more."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
P_BANDS = (0.2, 0.4, 0.6, 0.8, 1.0)  # upper edges; a band is all a scrape can tell


def p_band(p: float) -> str:
    lower = 0.0
    for upper in P_BANDS:
        if p < upper or upper == P_BANDS[-1]:
            return f"{lower:.1f}-{upper:.1f}"
        lower = upper
    return ""  # unreachable


class GateMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "dfdetect_requests",
            "Requests by endpoint, outcome and reason code",
            ["endpoint", "outcome", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "dfdetect_request_seconds",
            "Whole request latency",
            ["endpoint"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "dfdetect_stage_seconds",
            "Latency per stage (upload, queue, prepare, score, provider)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.batch = Histogram(
            "dfdetect_batch_size", "Files per model pass", buckets=BATCH_BUCKETS, registry=r
        )
        self.p_fake = Counter(
            "dfdetect_p_fake_band",
            "Files judged for trusted keys, by P(fake) band (no sum: no single score can be read back)",
            ["band"],
            registry=r,
        )
        self.no_face = Counter("dfdetect_no_face", "Files in which no face was found", registry=r)
        self.scored = Counter("dfdetect_files", "Files the gate judged (any verdict)", registry=r)
        self.in_flight = Gauge("dfdetect_in_flight", "Requests admitted and not yet answered", registry=r)
        self.rejected = Counter("dfdetect_rejected", "Requests refused with 503 (queue full)", registry=r)
        self.provider_calls = Counter(
            "dfdetect_provider_calls", "Provider calls made, by status", ["provider", "status"], registry=r
        )
        self.provider_avoided = Counter(
            "dfdetect_provider_calls_avoided",
            "Provider calls not made, by why",
            ["provider", "why"],
            registry=r,
        )
        self.provider_cost = Counter(
            "dfdetect_provider_cost_usd", "USD spent on provider calls", ["provider"], registry=r
        )
        self.provider_saved = Counter(
            "dfdetect_provider_cost_avoided_usd", "USD not spent (calls avoided)", ["provider"], registry=r
        )

    def observe_verdict(self, record: dict, serve_info: dict, trusted: bool = False) -> None:
        self.scored.inc()
        for stage, seconds in (record.get("timings") or {}).items():
            if stage not in ("upload", "queue"):  # observed by the route itself
                self.stage.labels(stage).observe(float(seconds))
        if "queue_s" in serve_info:
            self.stage.labels("queue").observe(serve_info["queue_s"])
        if "batch_size" in serve_info:
            self.batch.observe(serve_info["batch_size"])
        if trusted and record.get("p_fake") is not None:
            self.p_fake.labels(p_band(float(record["p_fake"]))).inc()
        if str(record.get("reason", "")).startswith("no_face"):
            self.no_face.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
