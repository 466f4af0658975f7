"""The Helm chart, linted and rendered by the real ``helm`` (``make tools`` builds it).

No cluster here, so the rendered objects are checked by reading them: probes on the ports the
containers open, volumes where the settings put table state, every environment variable a real
setting, every command a real ``eatcloud`` command, selectors that match their pods.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from eatcloud.cli import main as eatcloud_cli
from eatcloud.settings import Settings, weak_secret
from tests.unit.test_compose import setting_exists

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/eatcloud"
KUBE_VERSION = "1.30.0"  # helm built from source defaults to 1.20; the chart needs >= 1.25
VALUES = {
    "default": [],
    "production": [CHART / "ci/production-values.yaml"],
    "minimal": [CHART / "ci/minimal-values.yaml"],
}


def helm_binary() -> str:
    """``$HELM``, then what ``make tools`` built, then ``helm`` on the PATH."""
    candidates = [os.environ.get("HELM", "")]
    candidates += [str(p) for p in sorted((ROOT / ".stack/tools").glob("helm-*/helm"))]
    candidates.append(shutil.which("helm") or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("helm not found: run `make tools` (it builds helm with `go install`), or set HELM")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", "eatcloud", str(CHART), "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    done = helm(*args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=list(VALUES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(*VALUES[request.param])


def one(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix, [o["metadata"]["name"] for o in found])
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("name", list(VALUES))
def test_helm_lint_passes_strictly(name: str) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    for path in VALUES[name]:
        args += ["-f", str(path)]
    done = helm(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_each_installation_renders_the_objects_it_asks_for(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    always = {"Deployment", "Service", "StatefulSet", "ConfigMap", "ServiceAccount"}
    assert always <= kinds(objects)
    expected_extra = {
        "default": {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "Secret"},
        "production": {
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Job",
            "ServiceMonitor",
            "PrometheusRule",
        },
        "minimal": {"Secret"},
    }[name]
    optional = {
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "Secret",
        "ServiceMonitor",
        "PrometheusRule",
    }
    assert kinds(objects) & optional == expected_extra


# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema we have.
SCHEMA_VERSIONS = ("1.25.0", "1.37.0")
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}  # CRDs: checked by the tests below


def test_every_object_is_valid_for_kubernetes_with_no_unknown_field(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """Kubernetes' own JSON schemas, strict: a misspelt or misplaced field fails here."""
    _, objects = rendered
    for o in objects:
        if o["kind"] in OPERATOR_KINDS:
            continue
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{o['kind']} {o['metadata']['name']} on {version}: {exc}")


def test_every_container_has_resources_and_runs_a_real_eatcloud_command(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for c in containers(spec):
            assert c["resources"]["requests"] and c["resources"]["limits"], (name, c["name"])
            program, *words = c["command"]
            assert program == "eatcloud", c["command"]
            command: click.Command = eatcloud_cli
            for word in [w for w in words if not w.startswith("-")][:2]:
                assert isinstance(command, click.Group), c["command"]
                sub = command.commands.get(word)
                assert sub is not None, f"`eatcloud {' '.join(words)}` is not a command"
                command = sub
                if not isinstance(command, click.Group):
                    break
            assert not isinstance(command, click.Group), c["command"]


def test_every_variable_is_a_real_setting_and_the_settings_load(
    rendered: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, objects = rendered
    config = one(objects, "ConfigMap", "-config")["data"]
    secrets = next((o["stringData"] for o in objects if o["kind"] == "Secret"), {})
    names = set(config) | set(secrets)
    for _, spec in pod_specs(objects):
        for c in containers(spec):
            names |= {e["name"] for e in c.get("env", [])}
    unknown = sorted(n for n in names if not setting_exists(n))
    assert unknown == []
    for name, value in {**config, **secrets}.items():
        monkeypatch.setenv(name, value)
    if not secrets:  # the operator's own Secret (existingSecret) brings the JWT secret
        monkeypatch.setenv("EATCLOUD_AUTH__JWT_SECRET", "operator-managed-" + "x" * 40)
    settings = Settings()  # raises if any value is invalid
    assert settings.worker.web_host == settings.api.host == "0.0.0.0"
    if secrets:
        assert settings.signing_key()  # the API would start with it


def test_the_api_probes_its_health_endpoints_on_the_port_it_listens_on(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    config = one(objects, "ConfigMap", "-config")["data"]
    api = one(objects, "Deployment", "-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(config["EATCLOUD_API__PORT"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    service = one(objects, "Service", "-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_worker_is_a_statefulset_ready_when_its_tables_are_recovered(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    config = one(objects, "ConfigMap", "-config")["data"]
    worker = one(objects, "StatefulSet", "-worker")
    spec = worker["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "web": int(config["EATCLOUD_WORKER__WEB_PORT"]),
        "metrics": int(config["EATCLOUD_WORKER__METRICS_PORT"]),
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "web"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "web"}
    # Static membership: each pod's stable name is its group instance id.
    env = {e["name"]: e for e in container["env"]}
    assert env["EATCLOUD_KAFKA__GROUP_INSTANCE_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    assert float(env["EATCLOUD_KAFKA__SESSION_TIMEOUT_SECONDS"]["value"]) >= 6
    # Table state is mounted where the settings put it: a claim per pod, or an emptyDir.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["table-state"] == config["EATCLOUD_WORKER__DATA_DIR"]
    claims = [t["metadata"]["name"] for t in worker["spec"].get("volumeClaimTemplates", [])]
    volumes = {v["name"]: v for v in spec["volumes"]}
    if name == "minimal":
        assert claims == [] and "emptyDir" in volumes["table-state"]
    else:
        assert claims == ["table-state"] and "table-state" not in volumes
    service = one(objects, "Service", "-worker")
    assert service["spec"]["clusterIP"] == "None"
    assert worker["spec"]["serviceName"] == service["metadata"]["name"]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_pod_disruption_budgets_and_the_hpa_point_at_their_pods(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] in {"Deployment", "StatefulSet"}
    }
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        matching = [
            n
            for n, labels in pods.items()
            if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert matching == [pdb["metadata"]["name"]], pdb["metadata"]["name"]
    api = one(objects, "Deployment", "-api")
    if name == "minimal":
        assert api["spec"]["replicas"] == 1
    else:
        hpa = one(objects, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
        assert "replicas" not in api["spec"]  # the HPA owns it


def test_pods_wait_for_the_schema_that_the_migrations_job_applies(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    jobs = [o for o in objects if o["kind"] == "Job"]
    for app in (one(objects, "Deployment", "-api"), one(objects, "StatefulSet", "-worker")):
        init = app["spec"]["template"]["spec"].get("initContainers", [])
        if name == "minimal":
            assert init == []
        else:
            assert [c["command"][:3] for c in init] == [["eatcloud", "db", "wait"]]
    if name != "minimal":
        (job,) = jobs
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["eatcloud", "db", "migrate"]
        assert job["metadata"]["name"].endswith("-migrate-1")  # one Job per release revision
    else:
        assert jobs == []


def test_secrets_come_from_the_chart_or_from_the_operators_secret() -> None:
    generated = render()
    secret = one(generated, "Secret", "-api-secrets")
    again = one(render(), "Secret", "-api-secrets")
    assert weak_secret(secret["stringData"]["EATCLOUD_AUTH__JWT_SECRET"]) is None
    assert len(secret["stringData"]["EATCLOUD_AUTH__JWT_SECRET"]) == 64
    # Without a cluster to look the old one up, each render makes a new one (at install).
    assert (
        again["stringData"]["EATCLOUD_AUTH__JWT_SECRET"]
        != secret["stringData"]["EATCLOUD_AUTH__JWT_SECRET"]
    )
    given = one(
        render(sets=("secrets.jwtSecret=from-values-" + "x" * 40,)), "Secret", "-api-secrets"
    )
    assert given["stringData"]["EATCLOUD_AUTH__JWT_SECRET"] == "from-values-" + "x" * 40

    production = render(*VALUES["production"])
    assert "Secret" not in kinds(production)
    for name, spec in pod_specs(production):
        for c in spec["containers"]:
            refs = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
            api = name.endswith("-api")
            assert refs == ["eatcloud-credentials"] + ["eatcloud-api-credentials"] * api, name


def test_the_signing_key_reaches_the_api_pods_only(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    shared = [
        o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].endswith("-secrets")
    ]
    for secret in shared:
        if not secret["metadata"]["name"].endswith("-api-secrets"):
            assert "EATCLOUD_AUTH__JWT_SECRET" not in secret["stringData"]
    for name, spec in pod_specs(objects):
        for c in containers(spec):
            refs = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
            carries_key = any(
                r.endswith("api-secrets") or r.endswith("api-credentials") for r in refs
            )
            assert carries_key == (name.endswith("-api") and c["name"] == "api"), (name, c["name"])


def test_pods_run_under_the_default_seccomp_profile_without_an_api_token(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
    for account in (o for o in objects if o["kind"] == "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_monitoring_objects_ship_the_same_rules_and_dashboard_as_compose() -> None:
    objects = render(*VALUES["production"])
    rule = one(objects, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files/alerts.yml").read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboard = one(objects, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["eatcloud.json"]) == json.loads(
        (CHART / "files/dashboards/eatcloud.json").read_text()
    )
    monitor = one(objects, "ServiceMonitor")
    service_ports = {
        p["name"] for o in objects if o["kind"] == "Service" for p in o["spec"]["ports"]
    }
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"metrics"}
    assert "metrics" in service_ports
    # The API's metrics are scraped on a port of their own, which its public Service lacks.
    public = one(objects, "Service", "-api")
    assert [p["name"] for p in public["spec"]["ports"]] == ["http"]
    scraped = one(objects, "Service", "-api-metrics")
    assert scraped["spec"]["clusterIP"] == "None"
    assert scraped["spec"]["selector"] == public["spec"]["selector"]
    config = one(objects, "ConfigMap", "-config")["data"]
    api_ports = {
        p["name"]: p["containerPort"]
        for p in one(objects, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0][
            "ports"
        ]
    }
    assert int(config["EATCLOUD_API__METRICS_PORT"]) == api_ports["metrics"] != api_ports["http"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = (
        compose["services"]["prometheus"]["volumes"] + compose["services"]["grafana"]["volumes"]
    )
    assert "./charts/eatcloud/files/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert any(m.startswith("./charts/eatcloud/files/dashboards:") for m in mounts)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("worker.replicas=-1", "/worker/replicas"),
        ("config.kafka.processingGuarantee=maybe_once", "processingGuarantee"),
        ("config.extraEnv.NOT_OURS=1", "NOT_OURS"),
        ("api.autoscaling.targetCPUUtilizationPercentage=150", "targetCPUUtilizationPercentage"),
        ("worker.persistence.size=lots", "/worker/persistence/size"),
        ("unknownKey=1", "unknownKey"),
    ],
)
def test_the_values_schema_refuses_bad_values_by_name(setting: str, complaint: str) -> None:
    done = helm(
        "template", "eatcloud", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting
    )
    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


def test_network_policies_open_only_the_apis_port_and_metrics_to_prometheus(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    policies = {
        o["metadata"]["name"].rsplit("-", 1)[-1]: o["spec"]
        for o in objects
        if o["kind"] == "NetworkPolicy"
    }
    assert set(policies) == {"api", "worker", "migrations"}
    pods = {name.rsplit("-", 1)[-1]: spec for name, spec in pod_specs(objects)}
    for component, spec in policies.items():
        selected = spec["podSelector"]["matchLabels"]
        assert selected["app.kubernetes.io/component"] == component
        assert spec["policyTypes"] == ["Ingress"]
        assert component in pods or component == "migrations"
    prometheus = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    open_, metrics = policies["api"]["ingress"]
    assert "from" not in open_ and [p["port"] for p in open_["ports"]] == ["http"]
    assert metrics["from"] == prometheus and [p["port"] for p in metrics["ports"]] == ["metrics"]
    (worker,) = policies["worker"]["ingress"]
    assert worker["from"] == prometheus
    assert {p["port"] for p in worker["ports"]} == {"metrics", "web"}
    assert policies["migrations"].get("ingress", []) == []
    # Every port a policy names is one its pods open.
    for component in ("api", "worker"):
        named = {p["name"] for c in pods[component]["containers"] for p in c.get("ports", [])}
        for rule in policies[component]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= named, (component, rule)
