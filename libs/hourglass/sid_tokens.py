"""Layer-tagged SID tokens: `<a_12>` is code 12 of layer 1, `<b_7>` layer 2, and so on.

Tagging every token with its layer keeps a shortened (variable-length) SID unambiguous: once a
layer-2 token is removed, `<a_3> <c_9>` cannot be confused with `<a_3> <b_9>`. The collision
suffix uses the letter after the last layer (`<d_0>` for L=3). Layers are 1-based here, as in
the paper; codes are 0-based.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(r"^<([a-z])_(\d+)>$")
MAX_LAYERS = 25  # letters a..y for layers; z is never a layer


def layer_letter(layer: int) -> str:
    """Letter of 1-based `layer`."""
    if not 1 <= layer <= MAX_LAYERS + 1:
        raise ValueError(f"layer must be in 1..{MAX_LAYERS + 1}, got {layer}")
    return chr(ord("a") + layer - 1)


def token(layer: int, code: int) -> str:
    """The token of `code` on 1-based `layer`, e.g. token(2, 7) == '<b_7>'."""
    if code < 0:
        raise ValueError(f"codes are non-negative, got {code}")
    return f"<{layer_letter(layer)}_{code}>"


def suffix_token(index: int, num_layers: int) -> str:
    """Collision-breaking suffix: the letter after the last codebook layer."""
    return token(num_layers + 1, index)


def parse_token(tok: str) -> tuple[int, int]:
    """'<b_7>' → (2, 7): the 1-based layer and the code."""
    m = _TOKEN.match(tok)
    if not m:
        raise ValueError(f"not a SID token: {tok!r}")
    return ord(m.group(1)) - ord("a") + 1, int(m.group(2))


def codes_to_tokens(codes: Sequence[int]) -> list[str]:
    """A fixed-length code tuple (c1..cL) → its tagged tokens."""
    return [token(i + 1, int(c)) for i, c in enumerate(codes)]
