"""Boltz-Kinema: learn and generate molecular-dynamics trajectories with a diffusion model."""

__version__ = "0.1.0"
