"""Amazon Rekognition: ``RecognizeCelebrities`` and ``CompareFaces``, through boto3.

The client calls ``CompareFaces`` with ``SimilarityThreshold`` 0, so that every face pair gets a
similarity. Credentials come from boto3's standard chain (environment, shared files, profile,
instance role); botocore's own retries are off, the runner retries. ``endpoint_url`` points the
client elsewhere (tests, VPC endpoints).

RecognizeCelebrities returns ``CelebrityFaces[]`` (``Name``, ``MatchConfidence`` 0–100) and
``UnrecognizedFaces[]``; CompareFaces returns ``FaceMatches[]`` (``Similarity`` 0–100) and
``UnmatchedFaces[]`` (faces below ``SimilarityThreshold``, 80 by default: call it with
``SimilarityThreshold=0`` to get a similarity for every face). Errors arrive as
``{"Error": {"Code": ...}}`` (botocore) or ``{"__type": "...#Code"}`` (raw HTTP).
CompareFaces answers ``InvalidParameterException`` when either image has no face.
"""

from __future__ import annotations

from collections.abc import Mapping

from dfdetect.measure.credentials import error_message, is_auth_failure
from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.providers.base import ApiClient, CredentialsError, Outcome, parse_response
from dfdetect.measure.ratelimit import parse_retry_after
from dfdetect.measure.records import ApiResult
from dfdetect.measure.registry import Provider, register_provider
from dfdetect.utils.optional import require

# the credentials were refused (wrong, expired or unauthorised keys): never cached, never billed
AUTH_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "SignatureDoesNotMatch",
        "AccessDeniedException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "MissingAuthenticationTokenException",
        "MissingAuthenticationToken",
        "AuthFailure",
    }
)
# what boto3's standard chain reads (docs/attack_clients.md), named when credentials are missing
CHAIN_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
# the providers of boto3's chain that fetch credentials over the network
NETWORK_PROVIDERS = ("container-role", "iam-role")
THROTTLING = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailableException",
}


class AwsClient(ApiClient):
    provider = "aws"

    def __init__(
        self,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        profile: str | None = None,
        similarity_threshold: float = 0.0,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        max_pool_connections: int = 10,
        gate=None,
        **_ignored,
    ):
        boto3 = require("boto3", "cloud", "the aws provider")
        Config = require("botocore.config", "cloud", "the aws provider").Config

        super().__init__(gate)
        session = boto3.session.Session(profile_name=profile or None, region_name=region)
        if session.get_credentials() is None:
            raise CredentialsError(
                "aws: no credentials found in boto3's standard chain (AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials)"
            )
        self._frozen = session.get_credentials().get_frozen_credentials()
        self.similarity_threshold = float(similarity_threshold)
        self.client = session.client(
            "rekognition",
            endpoint_url=endpoint_url or None,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=float(connect_timeout_s),
                read_timeout=float(timeout_s),
                max_pool_connections=int(max_pool_connections),
            ),
        )

    def secrets(self) -> list[str]:
        return [s for s in (self._frozen.secret_key, self._frozen.token) if s]

    def recognize(self, image: bytes) -> Outcome:
        return self._call("recognize", self.client.recognize_celebrities, Image={"Bytes": image})

    def compare(self, fake: bytes, real: bytes) -> Outcome:
        # Similarity(X_T, X_D): the real target image is the source, the fake the target
        return self._call(
            "compare",
            self.client.compare_faces,
            SourceImage={"Bytes": real},
            TargetImage={"Bytes": fake},
            SimilarityThreshold=self.similarity_threshold,
        )

    def _call(self, operation: str, method, **kwargs) -> Outcome:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )
        from botocore.parsers import ResponseParserError

        self.gate()
        try:
            response = method(**kwargs)
        except (ReadTimeoutError, ConnectTimeoutError):
            return Outcome.retry("Timeout")
        except (EndpointConnectionError, ConnectionClosedError):
            return Outcome.retry("ConnectionError")
        except ResponseParserError:
            return Outcome.retry("MalformedResponse")
        except NoCredentialsError as e:
            raise CredentialsError(f"aws: {e}") from None
        except ClientError as e:
            error = e.response.get("Error") or {}
            meta = e.response.get("ResponseMetadata") or {}
            status = int(meta.get("HTTPStatusCode") or 0)
            code = str(error.get("Code") or f"HTTP{status}")
            raw = {
                "Error": {"Code": code, "Message": str(error.get("Message", ""))},
                "HTTPStatusCode": status,
            }
            if status == 429 or status >= 500 or code in THROTTLING:
                retry_after = parse_retry_after((meta.get("HTTPHeaders") or {}).get("retry-after"))
                return Outcome.retry(code, raw, retry_after)
            result = parse_response("aws", operation, {"Error": raw["Error"]})
            if is_auth_failure("aws", status, code):
                return Outcome(result, raw=raw, auth_failed=True, code=code, message=error_message(raw))
            return Outcome(result, raw=raw)
        raw = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        try:
            return Outcome(parse_response("aws", operation, raw), raw=raw)
        except AttackDataError:
            return Outcome.retry("MalformedResponse", raw)

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------------------------- responses
NO_FACE_ERRORS = {"compare": {"InvalidParameterException"}, "recognize": set()}


def error_code(payload: dict) -> str | None:
    if isinstance(payload.get("Error"), dict):
        return str(payload["Error"].get("Code") or "UnknownError")
    if "__type" in payload:
        return str(payload["__type"]).rsplit("#", 1)[-1]
    return None


def parse(operation: str, payload) -> ApiResult:
    if not isinstance(payload, dict):
        raise AttackDataError(f"aws {operation}: expected a JSON object, got {type(payload).__name__}")
    code = error_code(payload)
    if code is not None:
        status = "no_face" if code in NO_FACE_ERRORS[operation] else "error"
        return ApiResult("aws", operation, status, error_code=code)
    if operation == "recognize":
        return _recognize(payload)
    return _compare(payload)


def _recognize(payload: dict) -> ApiResult:
    if "CelebrityFaces" not in payload and "UnrecognizedFaces" not in payload:
        raise AttackDataError("aws recognize: neither CelebrityFaces nor UnrecognizedFaces in the response")
    celebrities = payload.get("CelebrityFaces") or []
    if celebrities:
        best = max(celebrities, key=lambda c: float(c["MatchConfidence"]))
        return ApiResult("aws", "recognize", "ok", name=best["Name"], confidence=best["MatchConfidence"])
    status = "ok" if payload.get("UnrecognizedFaces") else "no_face"
    return ApiResult("aws", "recognize", status)


def _compare(payload: dict) -> ApiResult:
    if "FaceMatches" not in payload and "UnmatchedFaces" not in payload:
        raise AttackDataError("aws compare: neither FaceMatches nor UnmatchedFaces in the response")
    matches = payload.get("FaceMatches") or []
    if matches:
        return ApiResult("aws", "compare", "ok", similarity=max(float(m["Similarity"]) for m in matches))
    status = "ok" if payload.get("UnmatchedFaces") else "no_face"
    return ApiResult("aws", "compare", status)


def compare_params(client_settings: Mapping) -> dict:
    """CompareFaces answers depend on ``SimilarityThreshold``."""
    return {"SimilarityThreshold": float(client_settings["similarity_threshold"])}


def credential_env(client_settings: Mapping) -> dict:
    return {operation: CHAIN_VARIABLES for operation in ("recognize", "compare")}


def missing_credentials(client_settings: Mapping, operations) -> list[str]:
    """Whether boto3's standard chain finds credentials, without a network call: the environment,
    the profile and the shared files are read; the container and instance roles (fetched over the
    network) are taken as present only when their variables say they are configured."""
    import os

    import botocore.session
    from botocore.exceptions import BotoCoreError

    if not operations:
        return []
    profile = client_settings.get("profile") or None
    try:
        resolver = botocore.session.Session(profile=profile).get_component("credential_provider")
        for name in NETWORK_PROVIDERS:
            resolver.remove(name)
        found = resolver.load_credentials()
    except BotoCoreError as e:  # e.g. a profile that does not exist
        return [f"aws credentials: {e}"]
    container = ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if found is not None or any(os.environ.get(v) for v in container):
        return []
    return [
        "aws credentials: boto3's chain finds none (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        " [+ AWS_SESSION_TOKEN], AWS_PROFILE or providers.aws.client.profile, or ~/.aws/credentials;"
        " an instance role cannot be checked without a network call: attack.check_credentials=false"
        " skips this check)"
    ]


PROVIDER = register_provider(
    Provider(
        name="aws",
        label="AWS",
        colour="#ff9900",
        client_class=AwsClient,
        parse=parse,
        error_code=error_code,
        requests_per_call={"recognize": 1, "compare": 1},
        confidence_scale=1.0,  # MatchConfidence and Similarity are 0–100
        table2_column="aws",
        compare_params=compare_params,
        credential_env=credential_env,
        missing_credentials=missing_credentials,
        auth_error_codes=AUTH_ERRORS,
    )
)
