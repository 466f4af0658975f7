"""One frozen settings tree for every EatCloud process, read from ``EATCLOUD_*`` variables.

Nested groups use ``__`` in variable names: ``EATCLOUD_KAFKA__BOOTSTRAP_SERVERS``,
``EATCLOUD_POSTGRES__PORT``. Defaults point at the local stack that ``eatcloud stack up``
starts on 127.0.0.1, so a fresh checkout runs without any configuration.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eatcloud.domain.hours import known_time_zone

# The key that tokens are signed with when ``env`` is ``test`` and none is set: public, so
# no other environment accepts it (nor any key that looks like a placeholder).
TEST_JWT_SECRET = "test-only-placeholder-key-never-use-it-elsewhere-0123456789"
MIN_SECRET_BYTES = 32
_PLACEHOLDER_WORDS = ("placeholder", "change-me", "changeme", "example", "dev-only", "local-only")
# Secrets this repository once published (docs, compose, defaults): never accepted.
_PUBLISHED_SECRETS = frozenset(
    {
        "dev-only-placeholder-secret-change-me-0123456789",
        "local-placeholder-jwt-secret-change-me-0000000000",
        TEST_JWT_SECRET,
    }
)


class ConfigurationError(ValueError):
    """A setting the process cannot run with; the message says which and how to fix it."""


def weak_secret(secret: str) -> str | None:
    """Why ``secret`` is too weak to sign tokens with, or None when it is strong enough."""
    if secret in _PUBLISHED_SECRETS:
        return "it is a placeholder published in this repository"
    lowered = secret.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        return "it looks like a placeholder"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"it is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(secret)) < 10:
        return "it has fewer than 10 distinct characters"
    return None


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Group):
    bootstrap_servers: str = "127.0.0.1:9092"
    # Short sessions make a worker ready (and a restarted worker re-joined) in seconds; the
    # broker default of 45-60 s kept a restarted member waiting for its own ghost.
    session_timeout_seconds: float = 6.0
    heartbeat_interval_seconds: float = 1.0
    rebalance_timeout_seconds: float = 20.0
    request_timeout_seconds: float = 30.0
    # How often a worker re-reads the cluster's metadata. A worker that joined its group before
    # the broker listed its freshly created topics got no partitions, and only noticed them at
    # the next refresh (aiokafka's default: 5 minutes).
    metadata_max_age_seconds: float = Field(default=10.0, gt=0)
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # At-least-once with idempotent effects is the only guarantee: Faust 0.15.3's exactly_once
    # is not crash-safe with our tables (docs/architecture.md), so it is not offered.
    processing_guarantee: Literal["at_least_once"] = "at_least_once"
    # Producer batching: a few ms of linger turns one request per message into one per batch.
    producer_linger_ms: float = Field(default=5.0, ge=0)
    # Put before every topic name; tests use it to get topics of their own.
    topic_prefix: str = ""
    # Static group membership (KIP-345): a stable name per worker (the Helm chart uses the
    # StatefulSet pod's name). A restarted worker that comes back within the session timeout
    # gets its partitions back without a rebalance of the whole group.
    group_instance_id: str | None = None
    # How every client (the worker's Faust app, the relay, the forwarder, the probes, the CLI)
    # reaches the brokers: PLAINTEXT only on a trusted network such as the local stack;
    # SASL_SSL in production (docs/operations.md, "Security").
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # SCRAM (or PLAIN) with a user and password, or AWS_MSK_IAM: Amazon MSK's IAM access
    # control, a token signed with the pod's AWS credentials for ``aws_region`` (needs the
    # ``msk`` extra: aws-msk-iam-sasl-signer-python).
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "AWS_MSK_IAM"] = (
        "SCRAM-SHA-512"
    )
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    aws_region: str = ""
    # TLS: the CA bundle that signed the brokers' certificates (empty: the system's) and, for
    # mutual TLS, this client's certificate and key. Hostnames are always verified.
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    @model_validator(mode="after")
    def _credentials(self) -> KafkaSettings:
        if not self.security_protocol.startswith("SASL"):
            return self
        if self.sasl_mechanism == "AWS_MSK_IAM":
            if self.security_protocol != "SASL_SSL" or not self.aws_region:
                raise ValueError("AWS_MSK_IAM needs security_protocol SASL_SSL and aws_region")
        elif not self.sasl_username or not self.sasl_password.get_secret_value():
            raise ValueError(f"{self.security_protocol} needs sasl_username and sasl_password")
        return self


class WorkerSettings(_Group):
    app_id: str = "eatcloud"
    # Table state (RocksDB) lives here; it is a cache of the changelog topics and may be lost.
    data_dir: Path = Path(".stack/worker")
    store: str = "rocksdb://"
    # RocksDB's memory, per table partition (4 tables x their partitions, 16 by default).
    # Faust's defaults (up to 3 memtables of 64 MiB and a 2 GiB block cache each) let a
    # worker grow past its pod's limit: `make soak` saw +100 MB in 10 minutes, still rising.
    # With these a worker's RocksDB holds at most 16 x (2 x 4 + 8) MiB = 256 MiB.
    rocksdb_write_buffer_mib: int = Field(default=4, ge=1)
    rocksdb_block_cache_mib: int = Field(default=8, ge=1)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # Prometheus metrics of this worker (0: off); bound to web_host.
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    # The leader publishes the API's outbox (PostgreSQL) to Kafka. Off for workers that must
    # not touch the configured database's outbox (the saga's own tests and benchmarks).
    outbox_relay: bool = True
    # Order and stock events -> the PostgreSQL read models and the Redis stock gate.
    projections: bool = True
    # Order and stock events -> the Kinesis analytics stream.
    kinesis_forwarder: bool = True
    # The saga's handlers take up to this many input records (each a batch of messages) per
    # unit, waiting at most ``batch_within_ms`` for more before they run what they have.
    batch_records: int = Field(default=200, ge=1, le=10_000)
    batch_within_ms: float = Field(default=10.0, gt=0, le=1_000)
    # Decoded table values the saga's handlers keep in memory (values this worker wrote or
    # read), the oldest written first out. Each is a few dozen Python objects that the cyclic
    # garbage collector walks in every full collection, so the pause grows with this number
    # (docs/benchmarks.md: about 5 ms per 1,000 values here).
    cached_values: int = Field(default=10_000, ge=0, le=1_000_000)
    # How often a worker tries to prune the outbox and processed_events (one worker of the
    # cluster at a time: eatcloud.postgres.pruning; the first round this long after start).
    prune_interval_seconds: float = Field(default=3600.0, gt=0)
    # A published outbox row stays this long (for ops: what was sent, when), then goes.
    # Unpublished rows are never pruned, whatever their age.
    outbox_keep_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    # A projection remembers an applied event id this long; a copy of the event arriving
    # later is applied again (see eatcloud.postgres.pruning). Keep it well above the longest
    # a projection can be down or behind; a week matches the stock gate's dedup keys.
    processed_events_keep_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)


class SagaSettings(_Group):
    """Deadlines of the order saga and the stock reservations (seconds)."""

    step_timeout_seconds: float = Field(default=10.0, gt=0)
    # A participant step is sent this many times before the saga gives up and compensates.
    step_attempts: int = Field(default=3, ge=1)
    accept_timeout_seconds: float = Field(default=600.0, gt=0)
    compensation_retry_seconds: float = Field(default=10.0, gt=0)
    reservation_ttl_seconds: float = Field(default=600.0, gt=0)
    # How often the timers look for passed deadlines and expired reservations.
    timer_interval_seconds: float = Field(default=1.0, gt=0)
    # A finished saga stays this long (late replies still find it), then leaves the table.
    retention_seconds: float = Field(default=3600.0, gt=0)
    # Points a completed order earns, in hundredths of a percent of the amount paid
    # (100 = 1 %: 1 point per 100 minor units); 0 turns earning off.
    points_earn_bp: int = Field(default=100, ge=0, le=10_000)


class PaymentSettings(_Group):
    """The simulated payment gateway (the only gateway so far)."""

    gateway: Literal["simulated"] = "simulated"
    latency_ms: float = Field(default=0.0, ge=0)
    # Deterministic declines, so tests and demos pick outcomes: an amount whose last two
    # digits are this value is declined as "card_declined"; above the limit, "over_limit".
    decline_cents: int = Field(default=13, ge=0, le=99)
    limit: int = Field(default=10_000_000, ge=0)
    # Every gateway call is appended here (JSON lines) when set: an audit trail for tests.
    journal: Path | None = None


class PostgresSettings(_Group):
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "eatcloud"
    password: SecretStr = SecretStr("")
    database: str = "eatcloud"
    # A PostgreSQL that does not answer a connection attempt within this is down: the request
    # answers 503 instead of waiting asyncpg's default minute.
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # TLS as libpq spells it: ``verify-full`` (the server's certificate, signed by
    # ``sslrootcert``, for this host name) wherever the network is not ours. ``prefer``, the
    # default, tries TLS and falls back to plain text, as libpq and asyncpg do.
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    sslrootcert: str = ""

    def dsn(self) -> str:
        """The libpq URL, password included: never log it, log ``safe_dsn`` instead."""
        secret = self.password.get_secret_value()
        auth = f"{self.user}:{secret}" if secret else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}{self._tls()}"

    def safe_dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}{self._tls()}"

    def _tls(self) -> str:
        if self.sslmode == "prefer" and not self.sslrootcert:
            return ""
        query = {
            "sslmode": self.sslmode,
            **({"sslrootcert": self.sslrootcert} if self.sslrootcert else {}),
        }
        return "?" + urlencode(query)


class RedisSettings(_Group):
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    password: SecretStr = SecretStr("")
    # Our commands take well under a millisecond; a Redis that does not answer within these
    # is down, and the request answers 503 instead of hanging.
    socket_timeout_seconds: float = Field(default=2.0, gt=0)
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # A pooled connection idle for longer than this is PINGed before its next command, so a
    # connection that died with a restarted Redis is replaced before a command is sent on it
    # (0: never PING; the one retry on a dead connection still replaces it).
    health_check_interval_seconds: float = Field(default=10.0, ge=0)
    # TLS (``rediss://``), the server's certificate verified against ``ssl_ca_certs`` (empty:
    # the system's CAs) and its host name.
    tls: bool = False
    ssl_ca_certs: str = ""

    def url(self) -> str:
        secret = self.password.get_secret_value()
        auth = f":{secret}@" if secret else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"

    def tls_options(self) -> dict[str, Any]:
        """What redis-py needs besides the URL, for every client (pools and probes)."""
        if not self.tls:
            return {}
        return {
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            **({"ssl_ca_certs": self.ssl_ca_certs} if self.ssl_ca_certs else {}),
        }


class KinesisSettings(_Group):
    # None means "the real AWS endpoint for the region"; locally it is moto's server.
    endpoint_url: str | None = "http://127.0.0.1:4566"
    region: str = "us-east-1"
    stream_name: str = "eatcloud-events"
    shard_count: int = Field(default=2, ge=1)
    # The forwarder creates the stream at start-up when it is missing (off where the stream
    # is managed elsewhere, e.g. by infrastructure code in AWS).
    create_stream: bool = True
    # moto accepts any credentials; in AWS leave these unset and use the default chain.
    access_key_id: SecretStr | None = SecretStr("local-placeholder")
    secret_access_key: SecretStr | None = SecretStr("local-placeholder")

    @field_validator("endpoint_url", "access_key_id", "secret_access_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """An empty variable means "not set": the AWS endpoint, the default credential chain."""
        return None if value == "" else value


class ApiSettings(_Group):
    host: str = "127.0.0.1"
    port: int = 8000
    # How long one readiness probe waits for each dependency before calling it down.
    probe_timeout_seconds: float = 2.0
    # GET /health/ready answers from its last check for this long: a flood of probes costs
    # the database and Redis one query each per period, whoever sends them.
    readiness_cache_seconds: float = Field(default=2.0, ge=0)
    # Proxies (addresses or CIDR blocks) whose X-Forwarded-For we believe: the client's address
    # is the last one in that header that is not one of them. Empty: the peer's address.
    trusted_proxies: list[str] = []
    # A request body larger than this is refused (413) before it is parsed. A checkout of the
    # largest cart the API takes is about 10 KiB.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # No page of a listing or a search starts deeper than this many rows (422).
    max_page_depth: int = Field(default=1_000, ge=100)
    # A checkout without an Idempotency-Key that repeats one of the same customer's (the same
    # body) within this many seconds gets the first one's order, replayed, instead of a new
    # order: a double-click places one order. 0 turns it off.
    double_submit_seconds: float = Field(default=10.0, ge=0)
    # Quotas: stores per manager, menus per store (409 past them).
    stores_per_manager: int = Field(default=20, ge=1)
    menus_per_store: int = Field(default=500, ge=1)
    # The IANA time zone of a new store whose manager names none: its opening hours are wall
    # clock times there (docs/api.md, Stores). Stores keep the zone they were made with.
    store_time_zone: str = "Asia/Seoul"
    # The Swagger UI (/docs, its assets served by the API) and the OpenAPI document
    # (/openapi.json). On by default; an operator may hide them from the public.
    docs_enabled: bool = True
    # Prometheus metrics: 0 serves /metrics on the API's own port (local runs, compose); another
    # port serves them only there (the chart: scraped by Prometheus, not behind the Service).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # Live order updates (Server-Sent Events): a comment line this often between changes, so
    # proxies keep the stream open; a stream ends after ``sse_max_seconds`` (clients resume).
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    sse_max_seconds: float = Field(default=1800.0, gt=0)

    @field_validator("store_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_time_zone(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for block in value:
            ipaddress.ip_network(block, strict=False)  # ValueError names a bad one
        return value


class AuthSettings(_Group):
    """Tokens and passwords. ``EATCLOUD_AUTH__JWT_SECRET`` signs the access tokens: at least
    32 random bytes, required wherever the API runs (``eatcloud run`` makes a local one)."""

    jwt_secret: SecretStr | None = None
    issuer: str = "eatcloud"
    audience: str = "eatcloud-api"
    access_ttl_seconds: int = Field(default=900, ge=30)
    # A session (its refresh token family) lives this long without a refresh.
    refresh_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    password_min_length: int = Field(default=8, ge=8)
    # argon2id's cost, sized for a 512 MiB API pod: 19 MiB and 2 passes per hash (OWASP's
    # minimum for argon2id; argon2-cffi's default is 64 MiB and 3 passes). Hashes made with
    # other parameters still verify, and are made again with these at the next login.
    argon2_memory_kib: int = Field(default=19_456, ge=8_192)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    # At most ``hashing_slots`` hashes at once per API process (each holds the memory above)
    # and ``hashing_queue`` more waiting; past that, signup and login answer 503 with
    # Retry-After instead of queueing work that starves the readiness probe.
    hashing_slots: int = Field(default=2, ge=1)
    hashing_queue: int = Field(default=16, ge=0)


class RateLimitSettings(_Group):
    """Token buckets: ``*_burst`` requests at once, refilled at ``*_per_minute``."""

    login_burst: int = Field(default=5, ge=1)  # per e-mail
    login_per_minute: float = Field(default=10.0, gt=0)
    # Per client address (see ``api.trusted_proxies``): signups, and login attempts whatever
    # the e-mail, so random e-mails cannot get around the per-e-mail limit.
    signup_burst: int = Field(default=5, ge=1)
    signup_per_minute: float = Field(default=5.0, gt=0)
    address_login_burst: int = Field(default=20, ge=1)
    address_login_per_minute: float = Field(default=30.0, gt=0)
    # Every signup and login of the cluster, whoever sends them: the hashing work's ceiling.
    password_burst: int = Field(default=100, ge=1)
    password_per_minute: float = Field(default=1200.0, gt=0)
    checkout_burst: int = Field(default=10, ge=1)
    checkout_per_minute: float = Field(default=60.0, gt=0)
    # Per caller: ``?wait=`` long-polls (and at most ``waiting_per_caller`` open at once in an
    # API process), and store searches.
    wait_burst: int = Field(default=20, ge=1)
    wait_per_minute: float = Field(default=120.0, gt=0)
    waiting_per_caller: int = Field(default=4, ge=1)
    # Live update streams (Server-Sent Events) a caller may hold open at once per API process.
    streams_per_caller: int = Field(default=4, ge=1)
    search_burst: int = Field(default=30, ge=1)
    search_per_minute: float = Field(default=120.0, gt=0)


class StackSettings(_Group):
    """Where and how ``eatcloud stack`` runs the local services (development and CI only)."""

    data_dir: Path = Path(".stack")
    kafka_version: str = "3.9.1"
    kafka_controller_port: int = 9093
    kafka_heap_mb: int = Field(default=512, le=512)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EATCLOUD_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    env: Literal["dev", "test", "prod"] = "dev"
    log_level: str = "INFO"
    # json: one JSON object per line (production, log shippers); text: short lines for a
    # person; auto: text when the process writes its logs to a terminal, json otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    kafka: KafkaSettings = KafkaSettings()
    worker: WorkerSettings = WorkerSettings()
    saga: SagaSettings = SagaSettings()
    payment: PaymentSettings = PaymentSettings()
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    kinesis: KinesisSettings = KinesisSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    stack: StackSettings = StackSettings()

    def signing_key(self) -> str:
        """The key access tokens are signed and checked with. Only ``env=test`` runs without
        one (on a public test key); anywhere else a missing, short or placeholder key is a
        ``ConfigurationError``: whoever knows a weak key can mint an admin's token."""
        secret = self.auth.jwt_secret
        given = None if secret is None else secret.get_secret_value()
        if given is None and self.env == "test":
            return TEST_JWT_SECRET
        if given is None:
            why = "it is not set"
        elif (weak := weak_secret(given)) is None:
            return given
        else:
            why = weak
        raise ConfigurationError(
            f"EATCLOUD_AUTH__JWT_SECRET cannot sign tokens: {why}. Set it to at least "
            f"{MIN_SECRET_BYTES} random bytes, for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` "
            "(`eatcloud run` makes one under .stack/ for a laptop)."
        )

    def masked(self) -> dict[str, Any]:
        """A dump safe for start-up logs: secrets are shown as ``**********``."""
        return self.model_dump(mode="json")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
