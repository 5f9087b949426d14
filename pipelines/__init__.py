"""Pure analysis pipelines: image array + options in, result message out (no Redis, no HTTP)."""
