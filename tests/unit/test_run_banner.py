"""What ``eatcloud run`` prints once everything is up, as a newcomer reads it: how to run the
next commands from here, how to get the first admin, and where the metrics really are."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from click.testing import CliRunner

from eatcloud.cli import endpoint_rows, main, ready_urls, when_ready
from eatcloud.settings import ApiSettings, Settings


def _commands(rows: list[tuple[str, str]]) -> list[list[str]]:
    return [where.split() for what, where in rows if " " in where and "://" not in where]


def test_every_command_it_suggests_is_one_this_cli_runs() -> None:
    rows = dict(endpoint_rows(Settings()))
    assert "users create-admin" in rows["the first admin (approves stores)"]
    suggested = [argv for argv in _commands(list(rows.items())) if argv[0].endswith("eatcloud")]
    assert len(suggested) == 3
    for argv in suggested:
        words = [w for w in argv[1:] if not w.startswith("--")][:2]
        shown = CliRunner().invoke(main, [*words, "--help"])
        assert shown.exit_code == 0, (argv, shown.output)  # an unknown command exits with 2


def test_it_names_the_path_when_eatcloud_is_not_on_the_path(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", "/nowhere")
    rows = dict(endpoint_rows(Settings()))
    assert rows["a demo scenario (another terminal)"].endswith("/eatcloud demo")
    assert rows["a demo scenario (another terminal)"] != "eatcloud demo"


def test_metrics_and_docs_rows_follow_the_settings() -> None:
    moved = Settings(api=ApiSettings(metrics_port=9102, docs_enabled=False))
    rows = dict(endpoint_rows(moved))
    assert rows["API metrics (Prometheus)"] == "http://127.0.0.1:9102/metrics"
    assert "API docs (OpenAPI)" not in rows
    assert dict(endpoint_rows(Settings()))["API metrics (Prometheus)"].endswith(":8000/metrics")


def _server(status: int) -> tuple[HTTPServer, str]:
    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/health/ready"


def test_the_table_waits_for_every_probe_to_answer_ready() -> None:
    ready, ready_url = _server(200)
    starting, starting_url = _server(503)
    calls: list[list[str]] = []
    try:
        thread = when_ready([ready_url, starting_url], calls.append, timeout=0.6, interval=0.05)
        thread.join(5)
        assert calls == [[starting_url]]  # printed late, naming the one still not ready
        calls.clear()
        when_ready([ready_url], calls.append, timeout=5, interval=0.05).join(5)
        assert calls == [[]]
    finally:
        for server in (ready, starting):
            server.shutdown()
            server.server_close()


def test_the_probes_are_the_api_and_the_worker_readiness() -> None:
    urls = ready_urls(Settings())
    assert urls == ["http://127.0.0.1:8000/health/ready", "http://127.0.0.1:6066/health/ready"]
