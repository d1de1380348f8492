"""What `make verify` and the tests check on a published folder: Tunix's own loader reads the
weights back to the policy's numbers (LoRA merged), and the model card's figures are the run's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tunixrt.jsonio import read_json
from tunixrt.manifest.schema import LoraSection, RunManifest
from tunixrt.paths import PUBLISH_DIR
from tunixrt.preference.config import PreferenceConfig
from tunixrt.publish.card import eval_rows
from tunixrt.publish.config import PublishConfig
from tunixrt.rl.config import RLConfig


def weight_differences(
    manifest: RunManifest,
    cfg: PublishConfig,
    rl: RLConfig,
    root: Path,
    pref: PreferenceConfig | None = None,
) -> list[str]:
    """Parameters whose published value is not the policy's (merged LoRA, in the published
    dtype), read back through Tunix's safetensors loader; [] when every one is equal. A PEFT
    folder is compared with the adapters it was factored from."""
    from tunixrt.publish.stage import policy_model

    model, _, mesh, _, lora = policy_model(manifest, cfg, rl, root, pref)
    return folder_differences(root / PUBLISH_DIR, manifest.model.family, model, lora, mesh)


def folder_differences(
    folder: Path, family: str, model: Any, lora: LoraSection | None, mesh: Any
) -> list[str]:
    """`weight_differences` for a policy model already loaded (LoRA unmerged)."""
    import jax.numpy as jnp

    from tunixrt.publish.layouts import rules_for
    from tunixrt.publish.weights import adapter_tensors, merged, read_model
    from tunixrt.train.model import from_safetensors

    params, adapters = read_model(model)
    config = model.config
    if (folder / "adapter_config.json").is_file():
        from safetensors.numpy import load_file

        assert lora is not None
        want, _ = adapter_tensors(rules_for(family, config), params, adapters)
        got = {}
        for f in sorted(folder.glob("adapter_model*.safetensors")):
            got.update(load_file(str(f)))
        return _differences(
            got, {k: v.astype(got[k].dtype) for k, v in want.items() if k in got}, set(want)
        )
    want = merged(params, adapters, lora.alpha / lora.rank) if lora is not None else params
    dtype = read_json(folder / "config.json").get("dtype", "float32")
    target = jnp.float32 if dtype == "float32" else jnp.bfloat16
    got, _ = read_model(from_safetensors(family, folder, config, mesh, target))
    return _differences(
        got, {k: np.asarray(v).astype(got[k].dtype) for k, v in want.items() if k in got}, set(want)
    )


def _differences(
    got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], names: set[str]
) -> list[str]:
    out = [f"{k}: not in the published folder" for k in sorted(names - set(got))]
    out += [f"{k}: published but not a parameter of the policy" for k in sorted(set(got) - names)]
    for k in sorted(set(got) & set(want)):
        if got[k].shape != want[k].shape or not np.array_equal(got[k], want[k]):
            out.append(f"{k}: differs from the policy's value")
    return out


HALF_A_CELL = 5.01e-5  # the card writes rates as percentages with two decimals
_ROW = re.compile(r"^\| (.+?) \| (\d+) \| (.+) \|$")


def card_figures(card: str) -> dict[str, tuple[int, list[str]]]:
    """The evaluation table of a model card: row label -> (problems, the cells as written)."""
    rows = {}
    for line in card.splitlines():
        if m := _ROW.match(line):
            rows[m.group(1)] = (int(m.group(2)), [c.strip() for c in m.group(3).split("|")])
    return rows


def card_differences(card: str, eval_metrics: Mapping[str, Any]) -> list[str]:
    """Rows of the card's evaluation table that do not say what runs/eval/metrics.json says."""
    rows = card_figures(card)
    out = []
    for label, n, rates in eval_rows(eval_metrics):
        if label not in rows:
            out.append(f"{label}: missing from the card")
            continue
        got_n, cells = rows[label]
        got = [float(c.rstrip("%")) / 100 for c in cells]
        if (
            got_n != n
            or len(got) != len(rates)
            or any(abs(a - b) > HALF_A_CELL for a, b in zip(got, rates, strict=True))
        ):
            out.append(f"{label}: card {got_n} {cells}, metrics {n} {rates}")
    return out
