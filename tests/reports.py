"""docs/reliability.md has one section per writer: the chaos suite's long form and the soak.

Each writer replaces only its own section (between ``<!-- <name>:start -->`` and
``<!-- <name>:end -->``), so running one keeps the other's figures.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

TITLE = "# Reliability\n"
INTRO = """
What the platform's long-running checks measured, written by the checks themselves:
`make chaos` (faults under load) and `make soak` (a steady load watched for growth).
Policies are in docs/operations.md ("When a dependency fails", "Pruning", "Event log
retention").
"""


def write_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` in section ``name`` of ``path``, creating the file or section if need be."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else TITLE + INTRO
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def commit(checkout: Path) -> str:
    """The short commit of ``checkout`` ("unknown" outside a git checkout)."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"
