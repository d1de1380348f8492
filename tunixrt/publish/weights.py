"""A trained model's numbers as publish writes them: every parameter by its tunixrt path, LoRA
adapters merged into the weights they adapt (`merged`) or factored into PEFT's lora_A/lora_B
pairs on transformers' module names (`adapter_tensors`).

qwix keeps an adapter as `<weight>_lora_a` / `<weight>_lora_b` beside the weight it adapts: A
holds the weight's contracting axes, B the others, and the layer adds
`x · A · B · alpha / rank`. So the merged weight is W + einsum(A, B) · alpha / rank in W's own
axis order, and since a layout rule only moves numbers around, the rule applied to `A ⊗ 1` and
`1 ⊗ B` gives transformers' A (in-features) and B (out-features) for each tensor W becomes.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Iterator
from typing import Any

import numpy as np

from tunixrt.errors import ConfigError
from tunixrt.publish.layouts import Arrays, Rule, export_param

LORA_A, LORA_B = "_lora_a", "_lora_b"


@dataclasses.dataclass(frozen=True)
class Adapter:
    weight: str  # the adapted parameter's path, e.g. layers.0.attn.q_einsum.w
    a: np.ndarray  # [contracting axes of the weight..., rank]
    b: np.ndarray  # [rank, other axes of the weight...]
    einsum: str | None  # the module's einsum ("BTD,NDH->BTNH"); None: a dense kernel [in, out]

    @property
    def rank(self) -> int:
        return int(self.a.shape[-1])

    def factors(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, str]:
        """A and B in float32 with the weight's axes, and `<a>,<b>-><weight>`: how they make
        a delta in the weight's axis order."""
        a, b = self.a.astype(np.float32), self.b.astype(np.float32)
        if self.einsum is None:  # a dense kernel: qwix flattens its in and out axes
            n_in = _in_axes(a, shape)
            a = a.reshape(*shape[:n_in], self.rank)
            b = b.reshape(self.rank, *shape[n_in:])
            rhs = string.ascii_lowercase[: len(shape)]
            ins, outs = rhs[:n_in], rhs[n_in:]
        else:
            lhs, rhs = self.einsum.split("->")[0].split(",")
            ins = "".join(c for c in rhs if c in lhs)
            outs = "".join(c for c in rhs if c not in lhs)
        r = next(c for c in string.ascii_letters if c not in rhs)
        return a, b, f"{ins}{r},{r}{outs}->{rhs}"

    def delta(self, shape: tuple[int, ...]) -> np.ndarray:
        a, b, spec = self.factors(shape)
        out = np.einsum(spec, a, b)
        if out.shape != tuple(shape):
            raise ConfigError(f"publish: LoRA of {self.weight!r} gives {out.shape}, not {shape}")
        return out


def _in_axes(a: np.ndarray, kernel_shape: tuple[int, ...]) -> int:
    """How many leading kernel axes A's first axis flattens."""
    size, n = 1, 0
    while size < a.shape[0]:
        size *= kernel_shape[n]
        n += 1
    return n


def _value(var: Any) -> np.ndarray:
    return np.asarray(var.get_value() if hasattr(var, "get_value") else var.value)


def _walk(model: Any) -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, variable, owning module) of every parameter."""
    from flax import nnx

    nodes = list(nnx.iter_graph(model))  # children come before their module
    modules = {tuple(path): node for path, node in nodes if isinstance(node, nnx.Module)}
    for path, node in nodes:
        if isinstance(node, nnx.Param):
            yield ".".join(map(str, path)), node, modules.get(tuple(path[:-1]))


def read_model(model: Any) -> tuple[Arrays, list[Adapter]]:
    """The model's parameters (LoRA left out) and its adapters."""
    from flax import nnx

    params: Arrays = {}
    halves: dict[str, dict[str, Any]] = {}
    for path, var, module in _walk(model):
        if isinstance(var, nnx.LoRAParam):
            for suffix in (LORA_A, LORA_B):
                if path.endswith(suffix):
                    weight = path[: -len(suffix)]
                    einsum = getattr(module, "einsum_str", None)
                    halves.setdefault(weight, {"einsum": einsum})[suffix] = _value(var)
            continue
        params[path] = _value(var)
    adapters = []
    for weight, h in sorted(halves.items()):
        if weight not in params or LORA_A not in h or LORA_B not in h:
            raise ConfigError(f"publish: LoRA adapter {weight!r} without its weight or a half")
        adapters.append(Adapter(weight, h[LORA_A], h[LORA_B], h["einsum"]))
    return params, adapters


def merged(params: Arrays, adapters: list[Adapter], scale: float) -> Arrays:
    """W + delta · scale for each adapted weight, computed in float32, stored in W's dtype."""
    out = dict(params)
    for adapter in adapters:
        w = params[adapter.weight]
        total = w.astype(np.float32) + adapter.delta(w.shape) * np.float32(scale)
        out[adapter.weight] = total.astype(w.dtype)
    return out


def adapter_tensors(
    rules: list[Rule], params: Arrays, adapters: list[Adapter]
) -> tuple[Arrays, list[str]]:
    """PEFT's tensors: `<module>.lora_A.weight` [rank, in] and `<module>.lora_B.weight`
    [out, rank] for every transformers module an adapter touches (a fused weight, such as
    Gemma's kv einsum, gives each of its modules the same A), in the adapters' dtype, and those
    module names."""
    out: Arrays = {}
    modules: list[str] = []
    for adapter in adapters:
        a, b, spec = adapter.factors(params[adapter.weight].shape)
        a_rows: dict[str, list[np.ndarray]] = {}
        b_cols: dict[str, list[np.ndarray]] = {}
        for j in range(adapter.rank):
            only_a = np.einsum(spec, a[..., j : j + 1], np.ones_like(b[j : j + 1]))
            only_b = np.einsum(spec, np.ones_like(a[..., j : j + 1]), b[j : j + 1])
            for name, w in export_param(rules, adapter.weight, only_a).items():
                a_rows.setdefault(name, []).append(w[0])  # every row is A's column j
            for name, w in export_param(rules, adapter.weight, only_b).items():
                b_cols.setdefault(name, []).append(w[:, 0])  # every column is B's row j
        for name in a_rows:
            module = name.removesuffix(".weight")
            dtype = adapter.a.dtype
            out[f"base_model.model.{module}.lora_A.weight"] = np.stack(a_rows[name]).astype(dtype)
            out[f"base_model.model.{module}.lora_B.weight"] = np.stack(b_cols[name], axis=1).astype(
                dtype
            )
            modules.append(module)
    return out, modules
