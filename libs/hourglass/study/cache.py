"""Every result of the study is a JSON file named by what produced it, so an interrupted run
resumes where it stopped and a re-run with the same arguments recomputes nothing.

A cell's key is its readable name plus a short hash of every argument that changes its result
(recipe, budget, users, beam, seed...): change one and the cell is recomputed beside the old
file, never mixed with it. Files are written whole (temp file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fingerprint(**parts: Any) -> str:
    """12 hex digits of the JSON of `parts` (keys sorted): equal arguments, equal key."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class CellCache:
    """JSON results under `root`, one file per cell."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, name: str, **parts: Any) -> Path:
        return self.root / f"{name}-{fingerprint(**parts)}.json"

    def get(self, name: str, **parts: Any) -> dict | None:
        path = self.path(name, **parts)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, value: dict, name: str, **parts: Any) -> dict:
        path = self.path(name, **parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({**value, "cell": name, "args": parts}, indent=1,
                                  default=str))
        tmp.replace(path)
        return json.loads(path.read_text())

    def compute(self, fn: Callable[[], dict], name: str, **parts: Any) -> tuple[dict, bool]:
        """(the cell's value, whether it was cached); computes and stores it when missing."""
        found = self.get(name, **parts)
        if found is not None:
            return found, True
        return self.put(fn(), name, **parts), False
