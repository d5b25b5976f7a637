"""The provider registry: what dfdetect knows about each celebrity-recognition API, in one record.

Each provider has one module, ``dfdetect/measure/providers/<name>.py``, holding its client, its
response parser and its ``Provider`` record, which it registers when imported; the package
``dfdetect.measure.providers`` imports the built-in ones (AWS, Azure, Naver), and importing anything
under ``dfdetect.measure`` imports that package. Whatever depends on the provider reads the record:
building its client (``build_client``), parsing its answers (``providers.base.parse_response``),
which calls a pair needs and how many billable requests each costs (the runner), whether DHS
exists (scoring), the confidence scale of result files (the tariq2022 importer), its Table 2 column
and its colour and label in charts. What a user tunes lives in its config,
``dfdetect/conf/attack/<name>.yaml``: endpoints, credential variable names, rate limit, price tiers.
Adding a provider: docs/attack_clients.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dfdetect.measure.errors import AttackDataError

# the calls a client offers: celebrity recognition of one image, face similarity of a pair
OPERATIONS = ("recognize", "compare")


def no_call_params(client_settings: Mapping) -> dict:
    """No client setting changes what a ``compare`` call answers (nothing to add to its cache key)."""
    return {}


def no_credentials(client_settings: Mapping) -> dict:
    """A provider that needs no credential variables."""
    return {}


@dataclass(frozen=True)
class Provider:
    """One provider. ``client_class(gate=..., **settings)`` builds its client from the ``client``
    section of its config; ``parse(operation, payload)`` turns a decoded answer into an
    ``ApiResult`` and ``error_code(payload)`` finds the provider's error code in an error body
    (None when there is none). ``requests_per_call`` gives the billable HTTP requests of each
    operation it offers: a provider without ``compare`` has no face-similarity API (DHS is
    unavailable, never 0). ``confidence_scale`` turns its native confidences into 0–100 (1 for an
    API answering 0–100, 100 for 0–1). ``table2_column`` names its cells in Table 2 (None: not in
    Table 2); ``label`` titles that column and its bars in Fig. 4-style charts, drawn in ``colour``.
    ``compare_params(client_settings)`` are the parameters that change a ``compare`` answer
    (cached with it, so calls made with other settings are not mistaken for it).

    Credentials: ``credential_env(client_settings)`` gives, per operation, the environment variables
    its calls authenticate with (named in the config, e.g. ``vision_key_env``): a dry run checks
    they are set, logs and cached answers are scrubbed of their values, and an authentication
    failure names them. ``missing_credentials(client_settings, operations)``, when given, replaces
    that check (AWS: boto3's credential chain, resolved offline) and returns what is missing, in
    words. ``auth_error_codes``: the provider's error codes that mean the credentials were refused
    (besides HTTP 401 / 403); such answers are never cached or billed."""

    name: str
    label: str
    colour: str
    client_class: Callable[..., Any]
    parse: Callable[[str, Any], Any]
    error_code: Callable[[dict], str | None]
    requests_per_call: Mapping[str, int]
    confidence_scale: float = 100.0
    table2_column: str | None = None
    compare_params: Callable[[Mapping], dict] = no_call_params
    credential_env: Callable[[Mapping], Mapping[str, Sequence[str]]] = no_credentials
    missing_credentials: Callable[[Mapping, Sequence[str]], list[str]] | None = None
    auth_error_codes: frozenset[str] = frozenset()

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"provider name {self.name!r} must be an identifier (it is a config key)")
        unknown = sorted(set(self.requests_per_call) - set(OPERATIONS))
        if unknown or "recognize" not in self.requests_per_call:
            raise ValueError(
                f"provider {self.name!r}: requests_per_call needs 'recognize' (and optionally "
                f"'compare'), got {sorted(self.requests_per_call)}"
            )
        if any(int(n) < 1 for n in self.requests_per_call.values()):
            raise ValueError(f"provider {self.name!r}: every call costs at least one request")
        if not self.confidence_scale > 0:
            raise ValueError(f"provider {self.name!r}: confidence_scale must be positive")
        object.__setattr__(self, "requests_per_call", MappingProxyType(dict(self.requests_per_call)))
        object.__setattr__(self, "auth_error_codes", frozenset(self.auth_error_codes))

    @property
    def has_similarity(self) -> bool:
        """True when the provider has a face-similarity API (a ``compare`` call)."""
        return "compare" in self.requests_per_call


_PROVIDERS: dict[str, Provider] = {}


def register_provider(provider: Provider) -> Provider:
    """Add ``provider`` to the registry (a name or Table 2 column can be taken only once)."""
    if provider.name in _PROVIDERS:
        raise ValueError(f"provider {provider.name!r} is registered twice")
    column = provider.table2_column
    if column is not None and any(p.table2_column == column for p in _PROVIDERS.values()):
        raise ValueError(f"provider {provider.name!r}: Table 2 column {column!r} is taken")
    _PROVIDERS[provider.name] = provider
    return provider


def get_provider(name: str) -> Provider:
    """The record of ``name``; an unknown name raises ``AttackDataError`` listing the known ones."""
    try:
        return _PROVIDERS[name]
    except (KeyError, TypeError):
        raise AttackDataError(f"unknown provider {name!r}; expected one of {', '.join(_PROVIDERS)}") from None


def providers() -> tuple[Provider, ...]:
    """Every registered provider, in registration order (the order of tables and charts)."""
    return tuple(_PROVIDERS.values())


def provider_names() -> tuple[str, ...]:
    return tuple(_PROVIDERS)


def build_client(name: str, settings: Mapping, gate: Callable | None = None):
    """The client of provider ``name`` from its config section (``dfdetect/conf/attack/<name>.yaml``'s
    ``client``); ``gate`` is called before every HTTP request (rate limiting)."""
    return get_provider(name).client_class(gate=gate, **dict(settings))
