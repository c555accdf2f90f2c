"""Losses, checkpoints, parameter selection and the training loop."""
