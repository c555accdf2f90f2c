"""Processed store, dataset index, preprocessing, manifest and splits."""
