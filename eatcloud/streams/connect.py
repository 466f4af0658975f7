"""How every Kafka client reaches the brokers: the one place that turns ``KafkaSettings`` into
Faust credentials and aiokafka keyword arguments (TLS, SASL/SCRAM, Amazon MSK IAM).

The worker's Faust app takes ``credentials(kafka)`` as its ``broker_credentials``; every
aiokafka client this project builds (the relay's producer, the forwarder's consumer, DLQ
replay, the rebuild, the probes, the topic admin) takes ``client_options(kafka)``, which
Faust's own translation (``credentials_to_aiokafka_auth``) derives from the same credentials,
so the two can never disagree. ``tests/unit/test_backbone_security.py`` checks that no client
is built without them.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from eatcloud.settings import KafkaSettings


def tls_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """Verifies the brokers' certificates and host names; presents ours for mutual TLS."""
    context = ssl.create_default_context(cafile=kafka.ssl_cafile or None)
    if kafka.ssl_certfile:
        context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile or None)
    return context


class MSKTokens(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped here
    """Amazon MSK IAM: a SASL/OAUTHBEARER token signed with this process's AWS credentials
    (the pod's IAM role), made again shortly before it expires."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._token = ""
        self._expires_ms = 0

    async def token(self) -> str:
        if time.time() * 1000 > self._expires_ms - 60_000:
            try:
                from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
            except ImportError as exc:  # the extra is not installed
                raise RuntimeError(
                    "AWS_MSK_IAM needs aws-msk-iam-sasl-signer-python: pip install 'eatcloud[msk]'"
                ) from exc
            self._token, self._expires_ms = MSKAuthTokenProvider.generate_auth_token(self.region)
        return self._token


def credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """Faust's broker credentials for ``kafka`` (None: PLAINTEXT)."""
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = tls_context(kafka) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        assert context is not None
        return SSLCredentials(context)
    if kafka.sasl_mechanism == "AWS_MSK_IAM":
        return OAuthCredentials(oauth_cb=MSKTokens(kafka.aws_region), ssl_context=context)
    return SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=kafka.sasl_mechanism,
    )


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security keyword arguments for an aiokafka client."""
    found = credentials(kafka)
    auth = {} if found is None else dict(credentials_to_aiokafka_auth(found))
    return {"bootstrap_servers": kafka.bootstrap_servers, **auth}
