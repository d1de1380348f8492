"""The ingest stage: source files or the generator -> canonical traces, rejects, report."""
