"""Sampling: the EDM sampler, generation modes and trajectory writers."""
