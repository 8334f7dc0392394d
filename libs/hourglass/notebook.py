"""What the notebooks in `notebooks/` share: widgets, the checkout folder, showing results.

On Databricks `dbutils` and `display` live in the notebook's namespace (the IPython user
namespace), not in this module's; run as plain Python (`python notebooks/x.py`, the tests) they
do not exist, and widgets read `NB_<NAME>` environment variables, figures become PNG files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _notebook_global(name: str) -> Any:
    """`dbutils`/`display` of the running notebook, or None outside one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell.user_ns.get(name) if shell is not None else None


def widget(name: str, default: str, label: str) -> str:
    """A Databricks text widget; in plain Python the variable NB_<NAME>, else the default."""
    dbutils = _notebook_global("dbutils")
    if dbutils is None:
        return os.environ.get(f"NB_{name.upper()}", default)
    dbutils.widgets.text(name, default, label)
    return dbutils.widgets.get(name)


def repo_root(notebook_file: str | None) -> Path:
    """The checkout: the parent of `notebooks/` holding `notebook_file` (the notebook's
    `__file__`), or, on Databricks where a notebook has none, the working folder's parent."""
    if notebook_file:
        return Path(notebook_file).resolve().parents[1]
    return Path.cwd().parent


def show(obj: Any, name: str = "", out_dir: Path | None = None) -> None:
    """display() in a notebook; in plain Python a PNG per figure (`out_dir/name.png`) and a
    printed table per DataFrame."""
    display = _notebook_global("display")
    if display is not None:
        display(obj)
        return
    if hasattr(obj, "savefig"):
        if out_dir is None or not name:
            raise ValueError("a figure outside a notebook needs a name and out_dir for its PNG")
        out_dir.mkdir(parents=True, exist_ok=True)
        obj.savefig(out_dir / f"{name}.png", dpi=110, bbox_inches="tight")
        print(f"figure {name}: {out_dir / f'{name}.png'}")
    else:
        print(obj.to_string())
