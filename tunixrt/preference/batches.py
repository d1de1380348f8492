"""Preference pairs as the arrays Tunix's DPO/ORPO trainer reads (`dpo_trainer.TrainingInput`).

A pair is split as an SFT example is (tunixrt.train.examples.sequence_parts): `<bos>` + prompt,
left-padded to `prompt_len` (its start cut when longer: the end of a prompt is what the model
continues), and each response + `<eos>` (unless it ends with `<end_of_turn>`), right-padded to
`response_len` (its end cut when longer). Masks are 1 on tokens, 0 on padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunixrt.preference.pairs import Pair
from tunixrt.train.examples import sequence_parts
from tunixrt.train.tokenizer import Tokenizer


def pair_arrays(
    pairs: Sequence[Pair], tokenizer: Tokenizer, *, prompt_len: int, response_len: int
) -> dict[str, np.ndarray]:
    """prompt_ids/prompt_mask [n, prompt_len]; chosen_ids, chosen_mask, rejected_ids,
    rejected_mask [n, response_len]; int32."""
    pad = tokenizer.pad_id()
    n = len(pairs)
    out = {
        "prompt_ids": np.full((n, prompt_len), pad, np.int32),
        "prompt_mask": np.zeros((n, prompt_len), np.int32),
    }
    for side in ("chosen", "rejected"):
        out[f"{side}_ids"] = np.full((n, response_len), pad, np.int32)
        out[f"{side}_mask"] = np.zeros((n, response_len), np.int32)
    for i, p in enumerate(pairs):
        head, chosen = sequence_parts(p.prompt, p.chosen, tokenizer)
        _, rejected = sequence_parts(p.prompt, p.rejected, tokenizer)
        head = head[-prompt_len:]
        out["prompt_ids"][i, prompt_len - len(head) :] = head
        out["prompt_mask"][i, prompt_len - len(head) :] = 1
        for side, tail in (("chosen", chosen), ("rejected", rejected)):
            tail = tail[:response_len]
            out[f"{side}_ids"][i, : len(tail)] = tail
            out[f"{side}_mask"][i, : len(tail)] = 1
    return out
