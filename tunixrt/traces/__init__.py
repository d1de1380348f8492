"""The canonical reasoning trace: model, limits, normalization and identity."""

from tunixrt.traces.model import (
    Adapted,
    RecordError,
    Step,
    Trace,
    TraceLimits,
    build_trace,
    canonical_trace,
)

__all__ = [
    "Adapted",
    "RecordError",
    "Step",
    "Trace",
    "TraceLimits",
    "build_trace",
    "canonical_trace",
]
