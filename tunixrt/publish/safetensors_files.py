"""Weights as Hugging Face writes them: one `model.safetensors`, or shards
`model-0000N-of-0000M.safetensors` with `model.safetensors.index.json` above a size (the split
is huggingface_hub's, as transformers' `save_pretrained` does it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunixrt.jsonio import write_json


def write_weights(
    out: Path, tensors: dict[str, np.ndarray], max_shard_size: str | None, stem: str = "model"
) -> list[str]:
    """The files written, names sorted; tensors in name order within each file. None: one file,
    whatever its size."""
    from huggingface_hub import split_state_dict_into_shards_factory
    from safetensors.numpy import save_file

    split = split_state_dict_into_shards_factory(
        dict(sorted(tensors.items())),
        get_storage_size=lambda t: int(t.nbytes),
        filename_pattern=stem + "{suffix}.safetensors",
        max_shard_size=max_shard_size or sum(int(t.nbytes) for t in tensors.values()) + 1,
    )
    for filename, names in split.filename_to_tensors.items():
        shard = {n: tensors[n] for n in sorted(names)}
        save_file(shard, str(out / filename), metadata={"format": "pt"})
    files = sorted(split.filename_to_tensors)
    if split.is_sharded:
        index = {
            "metadata": split.metadata,
            "weight_map": dict(sorted(split.tensor_to_filename.items())),
        }
        write_json(out / f"{stem}.safetensors.index.json", index)
        files.append(f"{stem}.safetensors.index.json")
    return files
