"""What a measurement costs: the providers' per-1,000-call price tiers (paper §5.2) and a meter
that stops a run before it spends more than ``max_cost`` US dollars."""

from __future__ import annotations

import threading
from collections.abc import Sequence


class BudgetExceeded(RuntimeError):
    """Raised before a request that would take the spend past ``max_cost``."""


def tier_cost(n_calls: int, tiers: Sequence[Sequence], calls_this_month: int = 0) -> float:
    """USD for ``n_calls`` more calls when ``calls_this_month`` were already billed this month.

    ``tiers`` are ``[up_to_calls_per_month or None, usd_per_1000]`` in increasing order; the last
    one usually has no upper bound."""
    first, last = int(calls_this_month), int(calls_this_month) + int(n_calls)
    cost, lower = 0.0, 0
    for upper, price in tiers:
        upper = float("inf") if upper is None else int(upper)
        n = max(0, min(upper, last) - max(lower, first))
        cost += n * float(price) / 1000.0
        lower = upper
    if last > lower:
        raise ValueError(f"price tiers end at {lower} calls a month; add an open-ended last tier")
    return cost


class CostMeter:
    """Counts billable requests (every HTTP request sent, retries included: a conservative count)
    and refuses the request that would take the spend past ``max_cost``."""

    def __init__(self, tiers: Sequence[Sequence], max_cost: float | None, calls_this_month: int = 0):
        self.tiers = [list(t) for t in tiers]
        self.max_cost = None if max_cost is None else float(max_cost)
        self.calls_this_month = int(calls_this_month)
        self.requests = 0
        self.spent = 0.0
        self._lock = threading.Lock()

    def charge(self, n: int = 1) -> None:
        with self._lock:
            price = tier_cost(n, self.tiers, self.calls_this_month + self.requests)
            if self.max_cost is not None and self.spent + price > self.max_cost + 1e-12:
                raise BudgetExceeded(
                    f"max_cost {self.max_cost:.2f} USD reached after {self.requests} requests "
                    f"({self.spent:.4f} USD spent); raise attack.max_cost to go on"
                )
            self.requests += n
            self.spent += price

    def refund(self, n: int = 1) -> None:
        """Take back the last ``n`` requests charged: a call the provider refused for its credentials
        (HTTP 401 / 403) is not billed."""
        with self._lock:
            n = min(int(n), self.requests)
            self.requests -= n
            self.spent = max(
                0.0, self.spent - tier_cost(n, self.tiers, self.calls_this_month + self.requests)
            )
