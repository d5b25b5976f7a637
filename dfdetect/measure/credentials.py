"""The credentials a provider's calls need: which environment variables (named in its config,
``dfdetect/conf/attack/<name>.yaml``), whether they are set — checked offline, so a dry run sends nothing
and makes no network call — and what to tell the user when the provider refuses them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from dfdetect.measure.registry import get_provider

# HTTP statuses that mean "these credentials are refused": never cached as answers, never billed
AUTH_STATUSES = (401, 403)


def credential_variables(
    provider: str, settings: Mapping, operations: Iterable[str] | None = None
) -> list[str]:
    """The environment variables ``operations`` (default: all) of ``provider`` authenticate with."""
    env = get_provider(provider).credential_env(settings)
    names: dict[str, None] = {}
    for operation, variables in env.items():
        if operations is None or operation in set(operations):
            names.update(dict.fromkeys(str(v) for v in variables))
    return list(names)


def missing_credentials(provider: str, settings: Mapping, operations: Iterable[str]) -> list[str]:
    """What ``operations`` of ``provider`` need and the environment lacks, in words (empty: all set).
    Offline: reads the environment (and, for AWS, the local files of boto3's chain), no request."""
    operations = list(dict.fromkeys(operations))
    record = get_provider(provider)
    if record.missing_credentials is not None:
        return list(record.missing_credentials(settings, operations))
    env = record.credential_env(settings)
    missing: dict[str, list[str]] = {}
    for operation in operations:
        for name in env.get(operation, ()):
            if not os.environ.get(str(name)):
                missing.setdefault(str(name), []).append(operation)
    return [f"{name} (for {', '.join(ops)})" for name, ops in missing.items()]


def is_auth_failure(provider: str, http_status: int | None, error_code: str | None) -> bool:
    """True when an answer says the credentials were refused: HTTP 401 / 403, or an error code
    that says so (``HTTP401``, Azure's ``401``, the provider's ``auth_error_codes``; how caches
    written before refusals were kept out of them hold such answers)."""
    if http_status in AUTH_STATUSES:
        return True
    if error_code is None:
        return False
    code = str(error_code)
    status_codes = {f"{prefix}{s}" for s in AUTH_STATUSES for prefix in ("", "HTTP")}
    return code in status_codes or code in get_provider(provider).auth_error_codes


def auth_hint(provider: str, settings: Mapping, operations: Iterable[str]) -> str:
    """``check AZURE_VISION_KEY`` for the variables the failed operations use."""
    names = credential_variables(provider, settings, operations) or credential_variables(provider, settings)
    if not names:
        return f"check the credentials of {provider}"
    return "check " + " / ".join(names)


def error_message(payload, limit: int = 200) -> str:
    """The human-readable message of a provider's error body (``message``, ``Message`` or
    ``errorMessage``, at the top or under ``error`` / ``Error``), cut to ``limit`` characters."""
    if not isinstance(payload, dict):
        return ""
    for holder in (payload, payload.get("error"), payload.get("Error")):
        if isinstance(holder, dict):
            for key in ("message", "Message", "errorMessage"):
                if isinstance(holder.get(key), str) and holder[key].strip():
                    return holder[key].strip()[:limit]
    return str(payload.get("unparsed_body") or "")[:limit]
