"""Files the jobs need at run time, shipped inside the wheel and found with `importlib.resources`.

An installed wheel has no repository around it, so nothing here is looked up by a path relative
to the source tree. `deepspeed/` holds the DeepSpeed JSONs (ZeRO-2/3, fp32 on CPU, bf16 on GPU)
that `sft_train` takes by file name, e.g. `--deepspeed_config zero2_gpu_bf16.json`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def deepspeed_config_names() -> list[str]:
    """File names of the DeepSpeed configs shipped with the package."""
    folder = files(__name__).joinpath("deepspeed")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))


def deepspeed_config_file(name: str) -> Path | None:
    """The shipped DeepSpeed JSON called `name` as a file on disk, or None if none is.

    A real path, not a stream: DeepSpeed and pyspark's distributor open the file themselves.
    pip installs packages unpacked, so the resource is already a file.
    """
    if name not in deepspeed_config_names():
        return None
    return Path(str(files(__name__).joinpath("deepspeed", name)))
