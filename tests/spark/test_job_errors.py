"""An expected failure as the user meets it: the installed command, one line, exit status 3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hourglass.cli import JOBS
from hourglass.errors import INPUT_ERROR

pytestmark = pytest.mark.spark


def test_no_codebooks_is_one_line_naming_the_fix_and_exit_status_3(tmp_path):
    script = Path(sys.executable).parent / JOBS["encode_items"].script
    proc = subprocess.run([str(script), "--output_root", str(tmp_path / "tables")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == INPUT_ERROR, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("hourglass-encode-items: ")]
    assert len(errors) == 1 and "run train_codebooks first" in errors[0]
    assert "Traceback" not in proc.stderr
