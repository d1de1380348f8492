"""The `dataset` config section."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(_Strict):
    meta: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict, description="meta key equals a value, or is in a list of values"
    )
    sources: list[str] = Field(
        default_factory=list, description="keep traces whose source matches one of these globs"
    )
    min_steps: int = Field(0, ge=0, description="keep traces with at least this many steps")
    max_steps: int | None = Field(None, ge=0, description="... and at most this many")
    min_chars: int = Field(0, ge=0, description="characters of prompt + steps + answer")
    max_chars: int | None = Field(None, ge=0, description="... and at most this many")


class SplitFractions(_Strict):
    """Fractions of val and test; train is the rest."""

    val: float = Field(0.1, ge=0, lt=1, description="fraction of traces in val")
    test: float = Field(0.1, ge=0, lt=1, description="fraction of traces in test")

    @model_validator(mode="after")
    def _room_for_train(self) -> SplitFractions:
        if self.val + self.test >= 1:
            raise ValueError("split.val + split.test must be below 1 (train is the rest)")
        return self


class NearDuplicates(_Strict):
    """MinHash over word shingles of prompt + reasoning (docs/datasets.md)."""

    enabled: bool = Field(True, description="drop near-duplicate texts, one kept per cluster")
    threshold: float = Field(
        0.7, gt=0, le=1, description="estimated Jaccard similarity of shingles that makes a pair"
    )
    shingle_words: int = Field(3, ge=1, le=32, description="words per shingle")
    num_perm: int = Field(64, ge=8, le=512, description="MinHash permutations")


class MixSource(_Strict):
    weight: float = Field(ge=0, description="share of the training split (over the sum)")


class DatasetConfig(_Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="the dataset's name (its key)"
    )
    version: str = Field(
        "v1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="the dataset's version"
    )
    seed: int = Field(0, description="seeds the split and the `limit` sample")
    filters: Filters = Field(default_factory=Filters, description="which traces to keep")
    dedup_prompts: bool = Field(
        True, description="drop traces whose prompt equals an earlier one up to case and spacing"
    )
    near_duplicates: NearDuplicates = Field(
        default_factory=NearDuplicates, description="near-duplicate texts (MinHash)"
    )
    limit: int | None = Field(None, ge=1, description="keep a seeded sample of this many")
    split: SplitFractions = Field(
        default_factory=SplitFractions, description="val/test fractions (by prompt hash)"
    )
    test_sources: list[str] = Field(
        default_factory=list, description="globs of sources sent whole to test (eval sets)"
    )

    decontaminate: Literal["drop", "report", "off"] = Field(
        "drop",
        description="training records sharing an n-gram with an eval set or the test split: "
        "drop them, only report them, or do not check",
    )
    decontaminate_ngram: int = Field(13, ge=1, le=64, description="n, in words")
    mix: dict[str, MixSource] = Field(
        default_factory=dict,
        description="a weight per mixture source (source.sources); empty: no mixture",
    )
    mix_policy: Literal["shrink", "repeat"] = Field(
        "shrink",
        description="a source short of its share: shrink the others, or repeat its records",
    )

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    def as_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
