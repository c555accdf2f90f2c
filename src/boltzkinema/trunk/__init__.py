"""Frozen trunk embeddings: backends and the per-topology cache."""
