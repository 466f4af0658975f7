"""An integration test whose service is missing fails with a message naming it; it never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_integration_tests_fail_naming_the_missing_service() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/integration/test_health.py::test_live_answers_without_touching_dependencies"],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "EATCLOUD_REDIS__PORT": "1", "EATCLOUD_API__PROBE_TIMEOUT_SECONDS": "1"},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "the local stack is not up" in output
    assert "redis at redis://127.0.0.1:1/0" in output
    assert "skipped" not in output
