"""The canonical reasoning trace: model, limits, normalization and identity."""

from tunixrt.traces.model import (
    RecordError,
    Step,
    Trace,
    TraceLimits,
    build_trace,
    canonical_trace,
)

__all__ = ["RecordError", "Step", "Trace", "TraceLimits", "build_trace", "canonical_trace"]
