from __future__ import annotations

import pytest

from hourglass.embed.text import item_text, validate_fields


def test_joins_non_empty_fields_and_unescapes():
    row = {"title": "Pens &amp; Pencils ", "brand": "", "categories": "Office  Supplies",
           "description": None}
    assert item_text(row, ["title"]) == "Pens & Pencils"
    assert item_text(row, ["title", "brand", "categories"]) == "Pens & Pencils | Office Supplies"
    assert item_text({"title": "  "}, ["title"]) == ""


def test_field_validation():
    assert validate_fields(["title", "brand"]) == ["title", "brand"]
    with pytest.raises(ValueError):
        validate_fields([])
    with pytest.raises(ValueError):
        validate_fields(["price"])
