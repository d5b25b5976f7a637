"""Start-up of the gate with AWS credentials from an instance role (issue #27, fault 9): the
credential check cannot see a role without a network call, so its message must name the option
serve.py has to skip it, and that option must work."""

from __future__ import annotations

import pytest

from dfdetect.utils.errors import UserError
from tests.conftest import compose_config

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def no_aws_credentials(tmp_path, monkeypatch):
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_the_credential_hint_names_serves_own_option_and_it_works(tmp_path, no_aws_credentials, monkeypatch):
    from dfdetect.serve.server import _forwarder

    cfg = compose_config("serve", ["serve.recognize.provider=aws", "serve.recognize.cache=null"], tmp_path)
    with pytest.raises(UserError) as refused:
        _forwarder(cfg)
    message = str(refused.value)
    assert "serve.recognize.check_credentials=false" in message and "attack.check_credentials" not in message
    import botocore.credentials

    def instance_role(self):  # what the metadata service would hand an instance with a role
        return botocore.credentials.Credentials(
            "ASIAROLE0000", "role-secret-value", "token", method="iam-role"
        )

    monkeypatch.setattr(botocore.credentials.InstanceMetadataProvider, "load", instance_role)
    cfg = compose_config(
        "serve",
        [
            "serve.recognize.provider=aws",
            "serve.recognize.cache=null",
            "serve.recognize.check_credentials=false",
        ],
        tmp_path,
    )
    forwarder = _forwarder(cfg)  # an instance role answers at the first call, not at start
    try:
        assert forwarder.provider == "aws"
    finally:
        forwarder.close()
