"""The spatial-temporal diffusion model: attention blocks, EDM preconditioning, the network."""
