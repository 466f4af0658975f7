"""Run real ``faust worker`` processes for tests: start, kill -9, stop, read their log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from eatcloud.cli import faust_worker_argv

ROOT = Path(__file__).resolve().parents[2]
# Every topic a test makes starts with this test session's own prefix, so the session deletes
# its topics at the end (tests/conftest.py) without touching another session's.
SESSION_PREFIX = f"t-{uuid.uuid4().hex[:6]}-"


def unique_prefix(kind: str) -> str:
    return f"{SESSION_PREFIX}{kind}-{uuid.uuid4().hex[:8]}-"


class WorkerProcess:
    """``faust -A <module> worker`` in a subprocess, its output in ``log``."""

    def __init__(self, module: str, env: dict[str, str], log: Path) -> None:
        self.module = module
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = faust_worker_argv(
            self.module, "info", "127.0.0.1", int(self.env["EATCLOUD_WORKER__WEB_PORT"])
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def totals_worker(tmp_path: Path, bootstrap: str, kind: str, **env: str) -> WorkerProcess:
    """A worker of ``tests.integration.apps.totals`` with its own prefix, data folder and port."""
    return WorkerProcess(
        "tests.integration.apps.totals",
        {
            "TOTALS_PREFIX": unique_prefix(kind).rstrip("-"),
            "EATCLOUD_WORKER__DATA_DIR": str(tmp_path / "worker-data"),
            "EATCLOUD_WORKER__WEB_PORT": str(free_port()),
            "EATCLOUD_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            **env,
        },
        tmp_path / "worker.log",
    )


class ApiProcess:
    """``eatcloud api`` (uvicorn) in a subprocess on ``database``; ``url`` once it answers."""

    def __init__(self, database: str, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "EATCLOUD_POSTGRES__DATABASE": database,
            "EATCLOUD_API__PORT": str(self.port),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 30.0) -> None:
        import time

        import httpx

        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eatcloud.cli", "api"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + within
        while True:
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def errors(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if '"level": "ERROR"' in line]


async def console_script(
    name: str, env: dict[str, str], *args: str, within: float = 120
) -> tuple[int, str]:
    """Run one of our console scripts (``eatcloud``, ``faust``) with ``env`` on top of ours.

    Returns (exit code, output with stderr merged). No stdin, as in CI.
    """
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name(name)),
        *args,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), within)
    return proc.returncode or 0, out.decode()


async def eatcloud_command(env: dict[str, str], *args: str, within: float = 120) -> tuple[int, str]:
    """The ``eatcloud`` command: (exit code, output)."""
    return await console_script("eatcloud", env, *args, within=within)
