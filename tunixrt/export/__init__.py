"""The export stage: dataset splits rendered in the chosen format, one JSONL per split."""
