"""Which item fields make the text that is embedded, and how they are joined."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

TEXT_FIELDS = ("title", "description", "brand", "categories")


def validate_fields(fields: Iterable[str]) -> list[str]:
    fields = list(fields)
    bad = [f for f in fields if f not in TEXT_FIELDS]
    if not fields or bad:
        raise ValueError(f"text fields must be a non-empty subset of {TEXT_FIELDS}, got {fields}")
    return fields


def item_text(row: Mapping[str, object], fields: Iterable[str]) -> str:
    """Join the non-empty fields with ' | ', HTML entities unescaped (the source keeps `&amp;`)."""
    parts = []
    for f in fields:
        value = row.get(f)
        if value is None:
            continue
        text = " ".join(html.unescape(str(value)).split())
        if text:
            parts.append(text)
    return " | ".join(parts)
