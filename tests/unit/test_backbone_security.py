"""TLS and SASL settings reach every client of the event backbone, PostgreSQL and Redis.

No broker with SASL_SSL runs here, so the Kafka side is checked where it is decided: the
credentials Faust gets, the keyword arguments every aiokafka client gets (derived from them),
and a scan of the code that no Kafka client is built without them. PostgreSQL's and Redis's
TLS settings are tried against the local stack's plain-text servers in
``tests/integration/test_backbone_tls.py``: a client that insists on TLS must be refused.
"""

from __future__ import annotations

import ast
import ssl
from pathlib import Path

import certifi
import pytest
from aiokafka import AIOKafkaProducer
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from pydantic import ValidationError

from eatcloud.bootstrap import make_faust_app
from eatcloud.settings import KafkaSettings, PostgresSettings, RedisSettings, Settings
from eatcloud.streams.connect import MSKTokens, client_options, credentials

ROOT = Path(__file__).resolve().parents[2]


def scram() -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="b-1.kafka.internal:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="eatcloud-worker",
        sasl_password="s3cret-from-the-secret-store",  # type: ignore[arg-type]  # a SecretStr
        ssl_cafile=certifi.where(),
    )


def test_plaintext_is_the_local_default_and_adds_nothing() -> None:
    assert credentials(KafkaSettings()) is None
    assert client_options(KafkaSettings()) == {"bootstrap_servers": "127.0.0.1:9092"}


async def test_sasl_ssl_with_scram_verifies_the_brokers_and_signs_in() -> None:
    found = credentials(scram())
    assert isinstance(found, SASLCredentials)
    options = client_options(scram())
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "eatcloud-worker"
    assert options["sasl_plain_password"] == "s3cret-from-the-secret-store"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    # aiokafka takes them as they are (it refuses unknown or inconsistent ones).
    producer = AIOKafkaProducer(**options)
    try:
        assert producer.client._security_protocol == "SASL_SSL"
        assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    finally:
        await producer.stop()  # never started: closes what its constructor opened


def test_ssl_alone_and_amazon_msk_iam() -> None:
    tls = KafkaSettings(security_protocol="SSL", ssl_cafile=certifi.where())
    assert isinstance(credentials(tls), SSLCredentials)
    assert client_options(tls)["security_protocol"] == "SSL"
    iam = KafkaSettings(
        security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM", aws_region="ap-northeast-2"
    )
    found = credentials(iam)
    assert isinstance(found, OAuthCredentials) and isinstance(found.oauth_cb, MSKTokens)
    options = client_options(iam)
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(options["sasl_oauth_token_provider"], MSKTokens)


async def test_an_msk_token_is_signed_with_the_pods_aws_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "placeholder-secret-key-for-signing-only")
    token = await MSKTokens("ap-northeast-2").token()
    assert token and "." not in token[:4]  # a base64url presigned request, made offline


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_username and sasl_password"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"}, "sasl_password"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM"}, "aws_region"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "AWS_MSK_IAM",
             "aws_region": "us-east-1"},
            "SASL_SSL",
        ),
    ],
)  # fmt: skip
def test_sasl_without_what_it_needs_is_refused_by_name(
    changes: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        KafkaSettings(**changes)  # type: ignore[arg-type]


def test_the_worker_gets_the_same_credentials() -> None:
    settings = Settings(kafka=scram())
    app = make_faust_app(settings)
    found = app.conf.broker_credentials
    assert isinstance(found, SASLCredentials)
    assert (found.username, found.mechanism.value) == ("eatcloud-worker", "SCRAM-SHA-512")
    assert found.protocol.value == "SASL_SSL"


def test_no_kafka_client_is_built_without_the_security_options() -> None:
    """Every aiokafka client in the package takes ``**client_options(...)``."""
    missing = []
    for path in sorted((ROOT / "eatcloud").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if not name.startswith("AIOKafka"):
                continue
            spread = [k.value for k in node.keywords if k.arg is None]
            if not any(
                isinstance(v, ast.Call) and getattr(v.func, "id", "") == "client_options"
                for v in spread
            ):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not missing, missing


def test_postgres_and_redis_tls_settings_shape_their_urls() -> None:
    pg = PostgresSettings(sslmode="verify-full", sslrootcert="/etc/eatcloud/rds-ca.pem")
    assert pg.dsn().endswith(
        "/eatcloud?sslmode=verify-full&sslrootcert=%2Fetc%2Featcloud%2Frds-ca.pem"
    )
    assert pg.safe_dsn().endswith("?sslmode=verify-full&sslrootcert=%2Fetc%2Featcloud%2Frds-ca.pem")
    assert "?" not in PostgresSettings().dsn()  # prefer, libpq's default, says nothing
    redis = RedisSettings(tls=True, ssl_ca_certs="/etc/eatcloud/redis-ca.pem")
    assert redis.url().startswith("rediss://")
    assert redis.tls_options() == {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": "/etc/eatcloud/redis-ca.pem",
    }
    assert RedisSettings().tls_options() == {} and RedisSettings().url().startswith("redis://")
