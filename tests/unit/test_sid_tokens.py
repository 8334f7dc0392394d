from __future__ import annotations

import pytest

from hourglass.sid_tokens import codes_to_tokens, parse_token, suffix_token, token


def test_round_trip_and_letters():
    assert codes_to_tokens([12, 7, 3]) == ["<a_12>", "<b_7>", "<c_3>"]
    assert suffix_token(0, 3) == "<d_0>"
    for layer in (1, 2, 3, 4, 26):
        for code in (0, 1, 4095):
            assert parse_token(token(layer, code)) == (layer, code)


@pytest.mark.parametrize("bad", ["a_1", "<A_1>", "<a_-1>", "<a_>", "<ab_1>", "<a_1> "])
def test_parse_rejects_malformed(bad):
    with pytest.raises(ValueError):
        parse_token(bad)


def test_token_rejects_bad_input():
    with pytest.raises(ValueError):
        token(0, 1)
    with pytest.raises(ValueError):
        token(1, -1)
