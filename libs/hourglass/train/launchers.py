"""`hourglass-sft-launch`: the DeepSpeed launcher scripts shipped in the wheel, from any host that
has the wheel installed (no checkout): one node by default, the hosts of `HOSTFILE` when set.

The scripts (`hourglass/resources/launchers/`) start `python -m hourglass.train` on every rank
with this command's own interpreter, unless `PYTHON` names another; their knobs are environment
variables (NUM_GPUS, MASTER_PORT, OUTPUT_DIR, HOSTFILE, MASTER_ADDR, LAUNCHER, DRY_RUN ...), and
every argument goes to the trainer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SINGLE_NODE, MULTI_NODE = "launch_single_node.sh", "launch_multi_node.sh"


def launcher_script(name: str) -> Path:
    """The shipped launcher `name` as a file on disk (pip installs packages unpacked)."""
    from importlib.resources import files

    return Path(str(files("hourglass.resources").joinpath("launchers", name)))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from importlib.metadata import version

        print("hourglass-sft-launch", version("hourglass"))
        return
    script = launcher_script(MULTI_NODE if os.environ.get("HOSTFILE") else SINGLE_NODE)
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON") or sys.executable}
    raise SystemExit(subprocess.run(["bash", str(script), *args], env=env, check=False).returncode)


if __name__ == "__main__":
    main()
