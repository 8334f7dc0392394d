"""Install the `hourglass` package from libs/ (editable in the dev setup: `pip install -e .`)."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup


def _requirements(name: str) -> list[str]:
    """Read one pinned requirements file so versions live in a single place."""
    lines = (Path(__file__).parent / "requirements" / f"{name}.txt").read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


setup(
    name="hourglass",
    version="0.1.0",
    description="Residual-quantized semantic IDs at table scale, hourglass diagnostics and "
    "variable-length SIDs for generative retrieval.",
    package_dir={"": "libs"},
    packages=find_packages("libs"),
    python_requires=">=3.10",
    install_requires=_requirements("base"),
    extras_require={
        "spark": _requirements("spark"),
        "train": _requirements("train"),
        "dev": _requirements("dev"),
    },
    include_package_data=True,
)
