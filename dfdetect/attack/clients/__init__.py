"""Celebrity-recognition API clients (AWS Rekognition, Azure, Naver CFR): one attempt per call,
paced by a gate; retries, caching and cost control live in ``dfdetect.attack.runner``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dfdetect.attack.clients.base import (
    ApiClient,
    CredentialsError,
    Outcome,
    is_transient_code,
)
from dfdetect.attack.records import check_provider

HAS_SIMILARITY = {"aws": True, "azure": True, "naver": False}
REQUESTS_PER_CALL = {
    "aws": {"recognize": 1, "compare": 1},
    "azure": {"recognize": 1, "compare": 3},
    "naver": {"recognize": 1},
}


def build_client(provider: str, settings: Mapping, gate: Callable | None = None) -> ApiClient:
    """The client of ``provider`` from its config section (``conf/attack/<provider>.yaml``)."""
    check_provider(provider)
    if provider == "aws":
        from dfdetect.attack.clients.aws import AwsClient as cls
    elif provider == "azure":
        from dfdetect.attack.clients.azure import AzureClient as cls
    else:
        from dfdetect.attack.clients.naver import NaverClient as cls
    return cls(gate=gate, **dict(settings))


__all__ = [
    "HAS_SIMILARITY",
    "REQUESTS_PER_CALL",
    "ApiClient",
    "CredentialsError",
    "Outcome",
    "build_client",
    "is_transient_code",
]
