"""API keys from the environment, compared in constant time. Trusted keys see P(fake); the others
see only the verdict, so that a client cannot tune its fakes against the score."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from dfdetect.utils.errors import UserError

UNTRUSTED, TRUSTED = "untrusted", "trusted"


def key_hash(key: str) -> str:
    """What the audit log keeps of a key: enough to tell keys apart, useless to call the API."""
    return hashlib.sha256(b"dfdetect-api-key:" + key.encode()).hexdigest()[:16]


def _keys(environ: Mapping[str, str], name: str) -> list[str]:
    return [k.strip() for k in environ.get(name, "").split(",") if k.strip()]


@dataclass(frozen=True)
class ApiKeys:
    keys: tuple[str, ...]
    trusted: tuple[str, ...]
    required: bool = True

    @classmethod
    def from_env(
        cls, keys_env: str, trusted_env: str, required: bool = True, environ: Mapping[str, str] | None = None
    ) -> ApiKeys:
        environ = os.environ if environ is None else environ
        keys, trusted = _keys(environ, keys_env), _keys(environ, trusted_env)
        if required and not (keys or trusted):
            raise UserError(
                f"no API keys: set {keys_env} (comma-separated; {trusted_env} for keys that may see "
                "P(fake)), or serve.auth.required=false for a trial on loopback"
            )
        short = [k for k in keys + trusted if len(k) < 16]
        if short:
            raise UserError(f"API keys in {keys_env}/{trusted_env} must have at least 16 characters")
        return cls(tuple(keys), tuple(trusted), required)

    @staticmethod
    def _match(candidate: bytes, keys: tuple[str, ...]) -> bool:
        found = False
        for key in keys:  # every key is compared: the time does not say which one matched
            found |= hmac.compare_digest(candidate, key.encode())
        return found

    def role(self, presented: str | None) -> str | None:
        """``trusted``, ``untrusted`` or None (refused). Without required keys, everyone is
        untrusted unless they present a trusted key."""
        candidate = (presented or "").encode()
        if self._match(candidate, self.trusted):
            return TRUSTED
        if self._match(candidate, self.keys) or not self.required:
            return UNTRUSTED
        return None
