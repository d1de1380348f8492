"""DVC stage `ingest`: source params -> data/traces/{traces,rejects}.jsonl and report.json."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("ingest")
