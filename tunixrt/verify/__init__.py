"""`tunixrt verify` / `make verify`, the CI reproducibility check: `check` (params, fresh-clone
repro, dvc.lock, repeat runs of the data stages) and `model` (train and evaluate)."""
