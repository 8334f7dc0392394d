"""Table references as strings: a path (`/x/items`, `s3a://b/items`) or a catalog name.

Pure string helpers in the base layer, so configs (which name their tables) need no Spark.
"""

from __future__ import annotations

_PATH_PREFIXES = ("/", "./", "../", "file:", "s3:", "s3a:", "abfss:", "gs:", "dbfs:", "hdfs:")


def is_path(ref: str) -> bool:
    """A table reference is a path when it looks like one; otherwise a catalog name."""
    return ref.startswith(_PATH_PREFIXES) or "/" in ref


def table_ref(root: str | None, name: str) -> str:
    """`root/name` when a root folder is given, else the bare (catalog) name."""
    return f"{root.rstrip('/')}/{name}" if root else name
