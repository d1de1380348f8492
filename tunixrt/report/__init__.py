"""The run report: `markdown` (runs/report.md, printed by `make demo`) and `page` (runs/report.html,
one self-contained page: dataset, lineage, curves, before/after, predictions, experiments)."""
