"""The spatial-temporal diffusion module (DESIGN §4).

Atom encoder (windowed atom attention) → token transformer (pair bias from ``z_trunk``,
transitions conditioned on the trunk's single representation) → atom decoder. After every
spatial attention comes a temporal attention across frames; its output projection starts at zero,
so a fresh model with one frame equals its spatial-only counterpart. EDM preconditioning is per
frame, and σ = 0 frames come back exactly as given. With temporal attention, every frame also
gets :class:`~boltzkinema.model.layers.frames.FrameConditioning` (a learned "given" vector
instead of a noise embedding where σ = 0, and features of the frame spacing and the frame's place
in the window), zero at initialisation. The blocks are in
:mod:`boltzkinema.model.modules.native`, their layers in :mod:`boltzkinema.model.layers`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from boltzkinema.data.features import ATOM_FEATURES
from boltzkinema.model.edm import Denoiser, preconditioning
from boltzkinema.model.layers.attention import time_distances
from boltzkinema.model.layers.embedding import FourierEmbedding
from boltzkinema.model.layers.frames import FrameConditioning, nearest_given
from boltzkinema.model.layers.token_maps import gather_tokens, mean_over_atoms
from boltzkinema.model.modules.native import AtomBlock, TokenBlock


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network; defaults are the full-scale ones of DESIGN §4."""

    c_s: int = 384
    c_z: int = 128
    c_atom: int = 128
    c_token: int = 768
    atom_heads: int = 4
    token_heads: int = 16
    atom_encoder_blocks: int = 3
    token_blocks: int = 24
    atom_decoder_blocks: int = 3
    temporal: bool = True
    causal: bool = False
    sigma_data: float = 16.0
    activation_checkpointing: bool = False
    # Generated frames are denoised as displacements from the nearest given frame
    # (frames.nearest_given); off by default, so existing checkpoints keep their meaning.
    anchor_given: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class DiffusionNetwork(nn.Module):
    """Denoise a batch of trajectories: ``forward(batch, x_noisy, sigma) -> x_denoised``.

    ``batch`` holds ``atom_features`` (B, M, ATOM_FEATURES), ``atom_mask`` (B, M),
    ``atom_to_token`` (B, M), ``token_mask`` (B, N), ``s_inputs``/``s_trunk`` (B, N, c_s),
    ``z_trunk`` (B, N, N, c_z), ``times`` (B, T) in ns and ``frame_mask`` (B, T).
    """

    architecture = "native"
    lora_targets = ("spatial.q", "spatial.kv", "spatial.qkv")

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.s_proj = nn.Sequential(nn.LayerNorm(2 * cfg.c_s), nn.Linear(2 * cfg.c_s, cfg.c_s))
        self.z_proj = nn.Sequential(
            nn.LayerNorm(cfg.c_z), nn.Linear(cfg.c_z, cfg.token_heads, bias=False)
        )
        self.atom_cond = nn.Linear(ATOM_FEATURES, cfg.c_atom)
        self.atom_from_s = nn.Linear(cfg.c_s, cfg.c_atom, bias=False)
        self.atom_from_x = nn.Linear(3, cfg.c_atom, bias=False)
        if cfg.anchor_given:
            self.atom_from_anchor = nn.Linear(3, cfg.c_atom, bias=False)
        self.noise_embed = FourierEmbedding(256, seed=0)  # of c_noise
        self.noise_to_atom = nn.Linear(256, cfg.c_atom, bias=False)
        self.noise_to_token = nn.Linear(256, cfg.c_token, bias=False)
        self.frame_conditioning = (
            FrameConditioning((cfg.c_atom, cfg.c_token)) if cfg.temporal else None
        )
        causal = cfg.causal if cfg.temporal else None
        atoms = (cfg.c_atom, cfg.atom_heads, causal)
        self.encoder = nn.ModuleList(AtomBlock(*atoms) for _ in range(cfg.atom_encoder_blocks))
        self.atom_to_token_proj = nn.Linear(cfg.c_atom, cfg.c_token, bias=False)
        self.token_from_s = nn.Linear(cfg.c_s, cfg.c_token, bias=False)
        self.tokens = nn.ModuleList(
            TokenBlock(cfg.c_token, cfg.c_s, cfg.token_heads, causal)
            for _ in range(cfg.token_blocks)
        )
        self.token_to_atom = nn.Linear(cfg.c_token, cfg.c_atom, bias=False)
        self.decoder = nn.ModuleList(AtomBlock(*atoms) for _ in range(cfg.atom_decoder_blocks))
        self.out_norm = nn.LayerNorm(cfg.c_atom)
        self.out = nn.Linear(cfg.c_atom, 3, bias=False)

    @property
    def trunk_widths(self) -> tuple[int, int]:
        """(c_s, c_z) of the trunk embeddings this network reads."""
        return self.cfg.c_s, self.cfg.c_z

    def denoiser(self, batch: dict[str, torch.Tensor]) -> Denoiser:
        """``denoise(x_noisy, sigma)`` for one batch (the sampler's view of the network)."""
        return lambda x_noisy, sigma: self(batch, x_noisy, sigma)

    def _run(self, block: nn.Module, *args):
        if self.cfg.activation_checkpointing and self.training:
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(
        self, batch: dict[str, torch.Tensor], x_noisy: torch.Tensor, sigma: torch.Tensor
    ) -> torch.Tensor:
        cfg = self.cfg
        atom_mask, token_mask, frame_mask = (
            batch["atom_mask"],
            batch["token_mask"],
            batch["frame_mask"],
        )
        idx = batch["atom_to_token"]
        n = token_mask.shape[1]
        c_in, c_skip, c_out, c_noise = preconditioning(sigma, cfg.sigma_data)
        dt = time_distances(batch["times"])

        s = self.s_proj(torch.cat([batch["s_inputs"], batch["s_trunk"]], dim=-1))  # (B, N, c_s)
        neg = torch.finfo(s.dtype).min
        pair_bias = self.z_proj(batch["z_trunk"]).permute(0, 3, 1, 2)  # (B, H, N, N)
        pair_bias = pair_bias.masked_fill(~token_mask[:, None, None, :], neg)

        gather = idx.clamp_min(0)[..., None]
        s_atoms = torch.gather(s, 1, gather.expand(-1, -1, cfg.c_s))  # (B, M, c_s)
        cond = self.atom_cond(batch["atom_features"]) + self.atom_from_s(s_atoms)  # (B, M, c_a)
        # Given frames (σ = 0) carry no noise embedding: the frame conditioning marks them.
        noise = self.noise_embed(c_noise) * (sigma > 0)[..., None].to(c_noise.dtype)  # (B, T, 256)
        r = x_noisy * c_in[..., None, None]
        q = cond[:, None] + self.atom_from_x(r) + self.noise_to_atom(noise)[:, :, None]
        anchor = torch.zeros_like(x_noisy)
        if cfg.anchor_given:
            anchor = nearest_given(x_noisy, sigma, batch["times"], frame_mask)
            q = q + self.atom_from_anchor((x_noisy - anchor) * c_in[..., None, None])
        if self.frame_conditioning is not None:
            frame_atom, frame_token = self.frame_conditioning(batch["times"], sigma)
            q = q + frame_atom[:, :, None]
        q = q * atom_mask[:, None, :, None]
        for block in self.encoder:
            q = self._run(block, q, cond, atom_mask, dt, frame_mask)

        tokens = mean_over_atoms(self.atom_to_token_proj(q), idx, atom_mask, n)
        tokens = tokens + self.token_from_s(s)[:, None] + self.noise_to_token(noise)[:, :, None]
        if self.frame_conditioning is not None:
            tokens = tokens + frame_token[:, :, None]
        for block in self.tokens:
            tokens = self._run(block, tokens, s, pair_bias, dt, frame_mask)

        q = q + gather_tokens(self.token_to_atom(tokens), idx, atom_mask)
        for block in self.decoder:
            q = self._run(block, q, cond, atom_mask, dt, frame_mask)
        update = self.out(self.out_norm(q))

        denoised = (
            anchor + c_skip[..., None, None] * (x_noisy - anchor) + c_out[..., None, None] * update
        )
        clean = (sigma == 0)[..., None, None]
        return torch.where(clean, x_noisy, denoised) * atom_mask[:, None, :, None]
