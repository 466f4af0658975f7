"""docker-compose.yml cannot run here (no Docker engine), so its wiring is checked by reading it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from eatcloud.settings import Settings, weak_secret

ROOT = Path(__file__).resolve().parents[2]
NEEDED = {"kafka", "postgres", "redis", "kinesis", "api", "worker", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def setting_exists(env_name: str) -> bool:
    """Does EATCLOUD_A__B name a field A.B of the settings tree?"""
    model: type[BaseModel] = Settings
    parts = env_name.removeprefix("EATCLOUD_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_every_service_the_settings_need_is_there_with_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) >= NEEDED
    for name in NEEDED:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


@pytest.mark.parametrize("role", ["api", "worker"])
def test_app_services_wait_for_healthy_dependencies(compose: dict[str, Any], role: str) -> None:
    depends = compose["services"][role]["depends_on"]
    for name in ("kafka", "postgres", "redis", "kinesis"):
        assert depends[name] == {"condition": "service_healthy"}, (role, name)


@pytest.mark.parametrize("role", ["api", "worker"])
def test_every_env_var_is_a_real_setting_with_a_valid_value(
    compose: dict[str, Any], role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: str(v) for k, v in compose["services"][role]["environment"].items()}
    unknown = [name for name in env if name.startswith("EATCLOUD_") and not setting_exists(name)]
    assert unknown == []
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    hosts = {
        settings.kafka.bootstrap_servers.split(":")[0],
        settings.postgres.host,
        settings.redis.host,
        (settings.kinesis.endpoint_url or "").split("//")[1].split(":")[0],
    }
    assert hosts <= set(compose["services"]), hosts


def test_setting_exists_rejects_names_that_are_not_settings() -> None:
    assert setting_exists("EATCLOUD_KAFKA__BOOTSTRAP_SERVERS")
    assert not setting_exists("EATCLOUD_KAFKA__BOOTSTRAP")
    assert not setting_exists("EATCLOUD_NOPE")
    assert not setting_exists("EATCLOUD_ENV__X")


def test_api_and_worker_start_after_the_schema_is_migrated(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["eatcloud", "db", "migrate"]
    for name in ("api", "worker"):
        needs = services[name]["depends_on"]["migrate"]
        assert needs == {"condition": "service_completed_successfully"}, name


def _secrets_in(value: object) -> list[str]:
    """The ``${NAME:?message}`` references in a compose value (required variables)."""
    return re.findall(r"\$\{(\w+):\?[^}]+\}", str(value))


def test_no_secret_is_in_the_file_and_compose_refuses_to_start_without_them(
    compose: dict[str, Any],
) -> None:
    env = compose["x-eatcloud-env"]
    for name in ("EATCLOUD_AUTH__JWT_SECRET", "EATCLOUD_POSTGRES__PASSWORD"):
        assert _secrets_in(env[name]), (name, env[name])
    assert _secrets_in(compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"])
    grafana = compose["services"]["grafana"]["environment"]
    assert _secrets_in(grafana["GF_SECURITY_ADMIN_PASSWORD"])
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    # What .env.example offers is a placeholder the app itself refuses.
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(example) >= {"EATCLOUD_JWT_SECRET", "EATCLOUD_POSTGRES_PASSWORD"}
    assert weak_secret(example["EATCLOUD_JWT_SECRET"]) is not None
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_every_published_port_is_bound_to_loopback(compose: dict[str, Any]) -> None:
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}
    assert any(published.values())
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)
