"""Reports rendered from a run folder (results.json + examples.jsonl) alone."""
