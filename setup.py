"""Shim for tools that still call setup.py: the metadata lives in pyproject.toml ([project],
package-dir libs/ under [tool.setuptools]). Dev setup: `pip install -e .`; wheel: `pip wheel .`."""

from setuptools import setup

setup()
