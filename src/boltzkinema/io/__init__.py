"""Readers for raw MD formats, chemistry tables, unit detection, and external checkpoints."""
