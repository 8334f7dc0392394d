"""How evaluation rows are named when a model saw part of the answer.

A model fine-tuned with `given_prefix: n` is evaluated with the first n tokens of each user's
target SID in its prompt (the paper's Table 1 "Given Layer 1"): its Recall measures how well the
rest of the SID is generated, not retrieval. Its rows carry `<strategy>+given_<n>`, so no table,
report or dashboard can mistake them for a retrieval result.
"""

from __future__ import annotations

import re

_GIVEN = re.compile(r"^(?P<strategy>.+)\+given_(?P<n>\d+)$")


def given_label(strategy: str, given_prefix: int) -> str:
    """`exchange_1_2+given_1`; the strategy name alone when nothing is given."""
    return f"{strategy}+given_{given_prefix}" if given_prefix else strategy


def given_tokens(label: str) -> int:
    """Target tokens a row's model was given (0 for a retrieval row)."""
    m = _GIVEN.match(label)
    return int(m.group("n")) if m else 0


def describe(label: str) -> str:
    """A row label as a person should read it in a table."""
    n = given_tokens(label)
    if not n:
        return label
    base = _GIVEN.match(label).group("strategy")
    return f"{base} + given prefix {n} (diagnostic: sees {n} target token{'s' * (n > 1)})"
