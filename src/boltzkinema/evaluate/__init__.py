"""Metrics against reference MD, baselines, per-split tables, figures and the report."""
