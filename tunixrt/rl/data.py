"""GRPO's prompts: the `grpo` rendering of the train split, in a seeded order, as Tunix batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from tunixrt.errors import DataError
from tunixrt.jsonio import iter_lines

COLUMNS = ("id", "prompts", "answer")  # what the learner and the reward functions read


class Prompt(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="the trace id")
    prompts: str = Field(description="the prompt templated up to the model's turn")
    answer: str = Field(description="the trace's final answer")
    completion: str = Field("", description="the reference completion (sizes the rollouts)")


def read_prompts(path: Path) -> list[Prompt]:
    if not path.is_file():
        raise DataError(f"{path}: not found; run the export stage first")
    out = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        rec = orjson.loads(line)
        for key in COLUMNS:
            if not isinstance(rec.get(key), str):
                raise DataError(
                    f"{path}:{lineno}: {key}: a grpo record needs a string {key!r} "
                    "(export with format=grpo)"
                )
        completion = rec.get("completion")
        out.append(
            Prompt(
                id=rec["id"],
                prompts=rec["prompts"],
                answer=rec["answer"],
                completion=completion if isinstance(completion, str) else "",
            )
        )
    if not out:
        raise DataError(f"{path}: no record to sample prompts from")
    return out


def prompt_order(n: int, steps: int, batch_size: int, seed: tuple[int, ...]) -> list[list[int]]:
    """`steps` batches of indices into the prompts: epoch e is the permutation
    default_rng([*seed, e]) of all n, and batches run on across epoch ends."""
    need = steps * batch_size
    order: list[int] = []
    epoch = 0
    while len(order) < need:
        order += np.random.default_rng([*seed, epoch]).permutation(n).tolist()
        epoch += 1
    return [order[s * batch_size : (s + 1) * batch_size] for s in range(steps)]


def batches(prompts: list[Prompt], order: list[list[int]]) -> Iterator[dict[str, Any]]:
    """One dict of numpy columns per step (Tunix repeats each column per generation; a list
    would not be repeated row-wise)."""
    for rows in order:
        yield {key: np.array([getattr(prompts[i], key) for i in rows]) for key in COLUMNS}
