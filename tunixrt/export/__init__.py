"""The export stage (rendered JSONL per split) and the manifest stage (the Tunix run manifest)."""
