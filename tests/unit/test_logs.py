"""setup_logging keeps py4j's connection chatter (INFO) out of job logs, not its warnings."""

from __future__ import annotations

import logging

import pytest

from hourglass.logs import setup_logging


@pytest.fixture
def py4j_level():
    logger = logging.getLogger("py4j")
    saved = logger.level
    logger.setLevel(logging.NOTSET)
    root = logging.getLogger()
    root_level = root.level
    root.setLevel(logging.INFO)  # what setup_logging's basicConfig sets on a fresh process
    yield
    logger.setLevel(saved)
    root.setLevel(root_level)


def test_py4j_info_is_dropped_and_its_warnings_kept(py4j_level):
    gateway = logging.getLogger("py4j.clientserver")
    setup_logging()
    assert not gateway.isEnabledFor(logging.INFO)  # "Closing down clientserver connection"
    assert gateway.isEnabledFor(logging.WARNING)
