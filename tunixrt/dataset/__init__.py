"""The dataset stage: select, deduplicate and split canonical traces."""
