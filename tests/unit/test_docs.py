"""docs/jobs.md is what `python -m hourglass.docs` makes from the typed configs today."""

from __future__ import annotations

from pathlib import Path

from hourglass.cli import JOBS
from hourglass.docs import jobs_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_jobs_reference_is_current():
    written = (ROOT / "docs" / "jobs.md").read_text()
    assert written == jobs_markdown(), (
        "docs/jobs.md is stale: run `.venv/bin/python -m hourglass.docs > docs/jobs.md`")
    for name, job in JOBS.items():
        assert f"## {name}\n" in written and f"`{job.script}`" in written
