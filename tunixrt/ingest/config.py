"""The `source` config section: where traces come from and how bad records are handled."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunixrt.errors import ConfigError
from tunixrt.ingest.adapters import AdapterName
from tunixrt.ingest.synthetic import SyntheticParams
from tunixrt.traces import TraceLimits
from tunixrt.validation import config_where, validate_config


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        "traces",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="names the dataset built from it",
    )
    on_error: Literal["reject", "fail"] = Field(
        "reject",
        description="reject: refuse the record (rejects.jsonl) and go on; fail: stop, exit 2",
    )
    max_reject_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="fail the stage when more than this is refused"
    )
    limits: TraceLimits = Field(
        default_factory=TraceLimits, description="tunix-rt's limits on a canonical trace"
    )


class SyntheticSource(_Common, SyntheticParams):
    kind: Literal["synthetic"] = Field(description="the built-in problem generator")


class FilesSource(_Common):
    kind: Literal["files"] = Field(description="JSONL files (optionally .gz), via an adapter")
    paths: list[str] = Field(min_length=1, description="files or globs, relative to the repo")
    adapter: AdapterName = Field("auto", description="how records are read; auto: per record")


class SyntheticPart(SyntheticParams):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["synthetic"] = Field(description="the built-in problem generator")


class FilesPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["files"] = Field(description="JSONL files (optionally .gz), via an adapter")
    paths: list[str] = Field(min_length=1, description="files or globs, relative to the repo")
    adapter: AdapterName = Field("auto", description="how records are read; auto: per record")


Part = Annotated[SyntheticPart | FilesPart, Field(discriminator="kind")]
MIX_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class MixtureSource(_Common):
    kind: Literal["mixture"] = Field(description="several sources; dataset.mix weighs them")
    sources: dict[Annotated[str, Field(pattern=MIX_NAME)], Part] = Field(
        min_length=1,
        description="name -> a files or synthetic source; every trace is tagged with its name",
    )


SourceConfig = SyntheticSource | FilesSource | MixtureSource
_KINDS: dict[str, type[BaseModel]] = {
    "synthetic": SyntheticSource,
    "files": FilesSource,
    "mixture": MixtureSource,
}


def parse_source(data: Any) -> SourceConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{config_where()}: section 'source' must be a mapping")
    kind = data.get("kind")
    if kind not in _KINDS:
        raise ConfigError(
            f"{config_where()}: source.kind: must be one of {sorted(_KINDS)} (got {kind!r})"
        )
    return validate_config(_KINDS[kind], data, "source")  # type: ignore[return-value]
