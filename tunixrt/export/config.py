"""The `format` config section: how to render (a `FormatSpec`) and which traces to export."""

from __future__ import annotations

from pydantic import Field, model_validator

from tunixrt.formats.spec import FormatSpec
from tunixrt.paths import SPLITS, Split


class FormatConfig(FormatSpec):
    splits: list[Split] | None = Field(
        default_factory=lambda: list(SPLITS),
        min_length=1,
        description="export these dataset splits (null: select by trace_ids)",
    )
    trace_ids: list[str] | None = Field(
        None, min_length=1, description="export exactly these trace ids (then splits: null)"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> FormatConfig:
        if (self.splits is None) == (self.trace_ids is None):
            raise ValueError(
                "set exactly one of format.splits and format.trace_ids "
                "(to select by ids: format.splits=null 'format.trace_ids=[id1,id2]')"
            )
        return self

    def spec(self) -> FormatSpec:
        return FormatSpec.model_validate(self.model_dump(include=set(FormatSpec.model_fields)))
