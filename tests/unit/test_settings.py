"""The settings tree: env names, nesting, secrets masked, frozen; the signing key's rules."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from eatcloud.api.app import create_app
from eatcloud.bootstrap import build
from eatcloud.settings import TEST_JWT_SECRET, ConfigurationError, Settings, weak_secret
from eatcloud.stack.secrets import local_signing_key


def test_defaults_point_at_the_local_stack_on_loopback() -> None:
    settings = Settings()
    assert settings.kafka.bootstrap_servers.startswith("127.0.0.1:")
    assert settings.postgres.host == settings.redis.host == "127.0.0.1"
    assert settings.kinesis.endpoint_url is not None
    assert settings.kinesis.endpoint_url.startswith("http://127.0.0.1:")


def test_nested_groups_are_read_from_double_underscore_env_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EATCLOUD_KAFKA__TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("EATCLOUD_WORKER__BATCH_RECORDS", "50")
    monkeypatch.setenv("EATCLOUD_POSTGRES__PORT", "6543")
    settings = Settings()
    assert settings.kafka.topic_partitions == 12
    assert settings.worker.batch_records == 50
    assert settings.postgres.port == 6543


def test_a_bad_value_is_refused_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EATCLOUD_KAFKA__PROCESSING_GUARANTEE", "exactly_once")
    with pytest.raises(ValidationError, match="processing_guarantee"):
        Settings()


def test_secrets_never_appear_in_the_masked_dump_or_the_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EATCLOUD_POSTGRES__PASSWORD", "s3cret-value")
    settings = Settings()
    assert "s3cret-value" not in str(settings.masked())
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in settings.postgres.safe_dsn()
    assert "s3cret-value" in settings.postgres.dsn()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.kafka.topic_partitions = 3  # type: ignore[misc]  # proving it is refused


def test_the_worker_gets_its_metadata_age_and_static_membership_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """A worker that joined before its topics were listed sees them at the next refresh."""
    from eatcloud.bootstrap import make_faust_app

    monkeypatch.setenv("EATCLOUD_KAFKA__METADATA_MAX_AGE_SECONDS", "7.5")
    monkeypatch.setenv("EATCLOUD_KAFKA__GROUP_INSTANCE_ID", "eatcloud-worker-2")
    app = make_faust_app(Settings(), id="settings-test", datadir=str(tmp_path))
    assert app.conf.consumer_metadata_max_age_ms == 7500
    assert app.conf.consumer_group_instance_id == "eatcloud-worker-2"
    assert Settings.model_fields["kafka"].default.metadata_max_age_seconds <= 30


def test_blank_kinesis_endpoint_and_keys_mean_aws_and_the_default_credential_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ENDPOINT_URL", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"):
        monkeypatch.setenv(f"EATCLOUD_KINESIS__{name}", "")
    kinesis = Settings().kinesis
    assert kinesis.endpoint_url is None
    assert kinesis.access_key_id is None and kinesis.secret_access_key is None


def test_pruning_runs_hourly_and_keeps_a_week_by_default() -> None:
    worker = Settings().worker
    assert worker.prune_interval_seconds == 3600
    assert worker.outbox_keep_seconds == worker.processed_events_keep_seconds == 7 * 24 * 3600


@pytest.mark.parametrize(
    "name", ["PRUNE_INTERVAL_SECONDS", "OUTBOX_KEEP_SECONDS", "PROCESSED_EVENTS_KEEP_SECONDS"]
)
@pytest.mark.parametrize("value", ["0", "-60"])
def test_a_pruning_interval_or_keep_time_that_is_not_positive_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"EATCLOUD_WORKER__{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


WEAK_KEYS = [
    "",
    "short",
    "x" * 64,  # long but no randomness
    "dev-only-placeholder-secret-change-me-0123456789",  # once the default
    "local-placeholder-jwt-secret-change-me-0000000000",  # once in docker-compose.yml
    "please-change-me-" + secrets.token_urlsafe(32),
    secrets.token_urlsafe(16),  # 22 characters: under 32 bytes
]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_api_has_no_signing_key_unless_one_is_set(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EATCLOUD_AUTH__JWT_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match=r"EATCLOUD_AUTH__JWT_SECRET .*not set"):
        Settings(env=env).signing_key()


@pytest.mark.parametrize("env", ["dev", "test", "prod"])
@pytest.mark.parametrize("key", WEAK_KEYS, ids=range(len(WEAK_KEYS)))
def test_a_weak_or_placeholder_signing_key_is_refused_in_every_environment(
    env: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EATCLOUD_AUTH__JWT_SECRET", key)
    with pytest.raises(ConfigurationError, match="cannot sign tokens"):
        Settings(env=env).signing_key()


@pytest.mark.parametrize("key", [secrets.token_urlsafe(32), secrets.token_hex(32)])
def test_a_random_key_of_32_bytes_or_more_is_accepted(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EATCLOUD_AUTH__JWT_SECRET", key)
    assert Settings(env="prod").signing_key() == key


def test_only_tests_run_without_a_key_on_the_public_test_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EATCLOUD_AUTH__JWT_SECRET", raising=False)
    assert Settings(env="test").signing_key() == TEST_JWT_SECRET
    monkeypatch.setenv("EATCLOUD_AUTH__JWT_SECRET", TEST_JWT_SECRET)
    with pytest.raises(ConfigurationError):
        Settings(env="prod").signing_key()


def test_the_api_refuses_to_start_on_a_weak_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EATCLOUD_AUTH__JWT_SECRET", "x" * 40)
    with pytest.raises(ConfigurationError):
        create_app(build(Settings()))


def test_eatcloud_api_without_a_key_says_so_and_exits_78(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EATCLOUD_AUTH__JWT_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "eatcloud.cli", "api"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 78, done.stdout + done.stderr
    said = " ".join(done.stdout.split())  # the console wraps long lines
    assert "EATCLOUD_AUTH__JWT_SECRET cannot sign tokens: it is not set" in said
    assert "Traceback" not in done.stdout + done.stderr


def test_eatcloud_run_makes_a_local_key_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    key = local_signing_key(tmp_path / ".stack")
    path = tmp_path / ".stack" / "jwt-secret"
    assert weak_secret(key) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_signing_key(tmp_path / ".stack") == key  # kept across runs
