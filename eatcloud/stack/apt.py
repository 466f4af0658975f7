"""Install the Debian packages the local stack needs, once, with visible progress."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

from eatcloud.errors import StackError

Say = Callable[[str], None]


def missing_packages(packages: Sequence[str]) -> list[str]:
    missing = []
    for package in packages:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if "install ok installed" not in done.stdout:
            missing.append(package)
    return missing


def ensure_packages(packages: Sequence[str], say: Say) -> None:
    """apt-get install what is missing of ``packages`` (root only; otherwise say what to run)."""
    if shutil.which("dpkg-query") is None:
        raise StackError(f"not a Debian system: install {' '.join(packages)} by hand")
    missing = missing_packages(packages)
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() != 0:
        raise StackError(f"missing Debian packages; run: sudo {' '.join(command)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"apt: updating package lists to install {', '.join(missing)}")
    _stream(["apt-get", "update"], env, say)
    say(f"apt: installing {', '.join(missing)}")
    _stream(command, env, say)


def _stream(command: list[str], env: dict[str, str], say: Say) -> None:
    """Run an apt command, echoing its progress lines (Get/Unpacking/Setting up) as they come."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith(("Get:", "Unpacking", "Setting up", "Fetched", "E:")):
            say(f"  {line.rstrip()}")
    if proc.wait() != 0:
        raise StackError(f"{' '.join(command)} failed:\n" + "\n".join(lines[-15:]))
