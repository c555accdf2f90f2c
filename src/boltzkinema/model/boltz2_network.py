"""Boltz-2's structure-module score network with our temporal attention (DESIGN §4).

:class:`Boltz2DiffusionNetwork` holds three parts whose parameter names equal those of a Boltz-2
Lightning checkpoint after a prefix mapping (see ``boltz2_weights.CHECKPOINT_PREFIXES``):

====================================  =================
Boltz-2 checkpoint                    this network
====================================  =================
``structure_module.score_model.*``    ``score_model.*``
``diffusion_conditioning.*``          ``conditioning.*``
``rel_pos.*``                         ``rel_pos.*``
====================================  =================

The only parameters without a Boltz-2 counterpart are the temporal attentions, one after the
spatial attention of every atom-encoder, token-transformer and atom-decoder layer
(``*.layers.<i>.temporal.*``), and the frame conditioning (``score_model.frame_conditioning.*``:
a learned "given" vector and features of the frame spacing and the frame's place in the window,
added to the single conditioning per frame; see :mod:`boltzkinema.model.layers.frames`). All
start at zero, so with one noised frame the network computes exactly what Boltz-2's
``AtomDiffusion.preconditioned_network_forward`` does.

On top of Boltz-2's formula, frames with σ = 0 are returned exactly as given (noise-as-masking:
they are conditioning frames). They enter the network without a noise embedding (Boltz's
``c_noise = ¼ ln(σ/σ_data)`` would give them the clamped value ¼ ln(1e-20), a real noise level);
the frame conditioning's "given" vector marks them instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from boltzkinema.model.edm import Denoiser, preconditioning
from boltzkinema.model.layers.attention import time_distances
from boltzkinema.model.layers.embedding import RelativePositionEncoder
from boltzkinema.model.layers.frames import FrameConditioning
from boltzkinema.model.modules.boltz2 import (
    MOL_TYPES,
    NAME_CHARS,
    NAME_CLASSES,
    AtomAttentionDecoder,
    AtomAttentionEncoder,
    Boltz2Conditioning,
    DiffusionConditioning,
    DiffusionTransformer,
    SingleConditioning,
)
from boltzkinema.trunk.boltz2_features import NUM_ELEMENTS, NUM_TOKENS

# Per-atom feature tensors (atom axis 1) that are zero-padded when M is not a multiple of W.
ATOM_FEATURE_KEYS = (
    "ref_pos",
    "ref_charge",
    "ref_element",
    "ref_atom_name_chars",
    "ref_space_uid",
    "atom_pad_mask",
    "atom_to_token",
    "atom_backbone_feat",
)


@dataclass(frozen=True)
class Boltz2Config:
    """Sizes and switches of the network; build it with ``config_from_checkpoint`` to match one.

    Every field but the last three has the meaning (and, where Boltz-2 has one, the default) of
    the Boltz-2 hyper-parameter of the same name; the four sizes Boltz-2 requires default to
    AlphaFold-3-like values. ``temporal`` adds the temporal attentions (``causal`` for unbinding).
    """

    token_s: int = 384
    token_z: int = 128
    atom_s: int = 128
    atom_z: int = 16
    atoms_per_window_queries: int = 32
    atoms_per_window_keys: int = 128
    atom_feature_dim: int = 388  # 3 + 1 + 128 + 4·64: position, charge, element, name
    dim_fourier: int = 256
    atom_encoder_depth: int = 3
    atom_encoder_heads: int = 4
    token_transformer_depth: int = 24
    token_transformer_heads: int = 8
    atom_decoder_depth: int = 3
    atom_decoder_heads: int = 4
    conditioning_transition_layers: int = 2
    transformer_post_ln: bool = False
    sigma_data: float = 16.0
    fix_sym_check: bool = False
    cyclic_pos_enc: bool = False
    use_no_atom_char: bool = False
    use_atom_backbone_feat: bool = False
    use_residue_feats_atoms: bool = False
    temporal: bool = True
    causal: bool = False
    activation_checkpointing: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _one_hot(index: torch.Tensor, classes: int) -> torch.Tensor:
    """One-hot float rows; a negative index gives a row of zeros (a padded entry)."""
    hot = F.one_hot(index.long().clamp_min(0), classes).float()
    return hot * (index >= 0)[..., None]


def features_from_batch(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Boltz-2's feature tensors from a batch of ours.

    The batch holds ``atom.*`` and ``token.*`` entries from
    :func:`~boltzkinema.trunk.boltz2_atoms.diffusion_features` (class indices, -1 where padded)
    besides our ``atom_to_token``, ``atom_mask`` and ``token_mask``.
    """
    b, n = batch["token_mask"].shape
    atom_mask = batch["atom_mask"]
    feats = {
        "ref_pos": batch["atom.ref_pos"],
        "ref_charge": batch["atom.ref_charge"],
        "ref_element": _one_hot(batch["atom.ref_element"], NUM_ELEMENTS),
        "ref_atom_name_chars": _one_hot(batch["atom.ref_atom_name_chars"], NAME_CLASSES),
        "ref_space_uid": batch["atom.ref_space_uid"].long(),
        "atom_pad_mask": atom_mask.float(),
        "atom_to_token": _one_hot(batch["atom_to_token"].masked_fill(~atom_mask, -1), n),
        "token_pad_mask": batch["token_mask"].float(),
        "res_type": _one_hot(batch["token.res_type"], NUM_TOKENS),
    }
    for key in ("residue_index", "asym_id", "entity_id", "sym_id"):
        feats[key] = batch[f"token.{key}"].long()
    # Boltz numbers the tokens of its (cropped) input 0..N-1.
    feats["token_index"] = torch.arange(n, device=atom_mask.device).expand(b, n)
    feats["cyclic_period"] = batch["token.cyclic_period"]
    feats["modified"] = batch["token.modified"].long().clamp_min(0)
    feats["mol_type"] = batch["token.mol_type"].long().clamp_min(0)
    return feats


def atom_feature_width(cfg: Boltz2Config) -> int:
    """Width of the per-atom input vector for ``cfg``'s switches (atom backbone features are
    not built by boltzkinema)."""
    width = 3 + 1 + NUM_ELEMENTS
    if not cfg.use_no_atom_char:
        width += NAME_CHARS * NAME_CLASSES
    if cfg.use_residue_feats_atoms:
        width += NUM_TOKENS + 1 + MOL_TYPES
    return width


def boltz2_c_noise(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """Boltz-2's noise conditioning ¼ ln(σ/σ_data), with σ/σ_data clamped at 1e-20."""
    return 0.25 * torch.log((sigma / sigma_data).clamp(min=1e-20))


def pad_atoms(
    feats: Mapping[str, torch.Tensor], multiple: int
) -> tuple[dict[str, torch.Tensor], int]:
    """Zero-pad the per-atom features to a multiple of ``multiple`` atoms; also return the pad.

    Padded atoms have ``atom_pad_mask`` 0 and no token, so real atoms never see them.
    """
    m = feats["atom_pad_mask"].shape[1]
    pad = -m % multiple
    if pad == 0:
        return dict(feats), 0
    padded = dict(feats)
    for key in ATOM_FEATURE_KEYS:
        if key in feats:
            x = feats[key]
            padded[key] = F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad))
    return padded, pad


class DiffusionModule(nn.Module):
    """Boltz-2's score model ``DiffusionModule`` with temporal attention in every transformer."""

    def __init__(self, cfg: Boltz2Config):
        super().__init__()
        temporal_causal = cfg.causal if cfg.temporal else None
        two_s = 2 * cfg.token_s
        self.single_conditioner = SingleConditioning(
            cfg.token_s, cfg.dim_fourier, cfg.conditioning_transition_layers
        )
        self.frame_conditioning = FrameConditioning((two_s,)) if cfg.temporal else None
        self.atom_attention_encoder = AtomAttentionEncoder(
            cfg.atom_s,
            cfg.token_s,
            cfg.atoms_per_window_queries,
            cfg.atoms_per_window_keys,
            cfg.atom_encoder_depth,
            cfg.atom_encoder_heads,
            cfg.transformer_post_ln,
            temporal_causal,
            cfg.activation_checkpointing,
        )
        self.s_to_a_linear = nn.Sequential(nn.LayerNorm(two_s), nn.Linear(two_s, two_s, bias=False))
        self.token_transformer = DiffusionTransformer(
            cfg.token_transformer_depth,
            cfg.token_transformer_heads,
            two_s,
            two_s,
            temporal_causal=temporal_causal,
            activation_checkpointing=cfg.activation_checkpointing,
        )
        self.a_norm = nn.LayerNorm(two_s)
        self.atom_attention_decoder = AtomAttentionDecoder(
            cfg.atom_s,
            cfg.token_s,
            cfg.atoms_per_window_queries,
            cfg.atoms_per_window_keys,
            cfg.atom_decoder_depth,
            cfg.atom_decoder_heads,
            temporal_causal,
            cfg.activation_checkpointing,
        )

    def forward(
        self,
        s_inputs: torch.Tensor,
        s_trunk: torch.Tensor,
        r_noisy: torch.Tensor,
        c_noise: torch.Tensor,
        feats: Mapping[str, torch.Tensor],
        cond: Boltz2Conditioning,
        times: torch.Tensor,
        sigma: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """r_noisy (B, T, M, 3) = c_in·x; c_noise, times (ns), sigma (B, T) → position update
        r (B, T, M, 3)."""
        frame = None
        if self.frame_conditioning is not None:
            (frame,) = self.frame_conditioning(times, sigma)
        s = self.single_conditioner(c_noise, s_trunk, s_inputs, sigma > 0, frame)
        dt = time_distances(times)
        atom_mask, atom_to_token = feats["atom_pad_mask"], feats["atom_to_token"]
        a, q, c = self.atom_attention_encoder(
            cond, r_noisy, atom_mask, atom_to_token, dt, frame_mask
        )
        a = a + self.s_to_a_linear(s)
        token_mask = feats["token_pad_mask"].float()[:, None]  # (B, 1, N): same for all frames
        a = self.token_transformer(
            a, s, cond.token_trans_bias.float(), token_mask, None, dt, frame_mask
        )
        a = self.a_norm(a)
        return self.atom_attention_decoder(a, q, c, cond, atom_mask, atom_to_token, dt, frame_mask)


class Boltz2DiffusionNetwork(nn.Module):
    """Denoise trajectories with Boltz-2's diffusion module plus temporal attention.

    ``forward(batch, x_noisy, sigma)`` takes a batch of ours, as ``DiffusionNetwork`` does.
    Underneath, :meth:`condition` and :meth:`denoise` take Boltz-2's own feature tensors
    (``feats``: see :class:`~boltzkinema.model.modules.boltz2.AtomEncoder` and
    :class:`~boltzkinema.model.layers.embedding.RelativePositionEncoder`, plus ``token_pad_mask``)
    with x_noisy (B, T, M, 3), sigma / times (ns) / frame_mask (B, T), s_inputs / s_trunk
    (B, N, token_s), z_trunk (B, N, N, token_z). Any atom count M works: atoms are padded to a
    multiple of the query window inside.
    """

    architecture = "boltz2"
    lora_targets = ("pair_bias_attn.proj_q", "pair_bias_attn.proj_k", "pair_bias_attn.proj_v")

    def __init__(self, cfg: Boltz2Config):
        super().__init__()
        self.cfg = cfg
        self.rel_pos = RelativePositionEncoder(
            cfg.token_z, fix_sym_check=cfg.fix_sym_check, cyclic_pos_enc=cfg.cyclic_pos_enc
        )
        self.conditioning = DiffusionConditioning(
            token_s=cfg.token_s,
            token_z=cfg.token_z,
            atom_s=cfg.atom_s,
            atom_z=cfg.atom_z,
            atoms_per_window_queries=cfg.atoms_per_window_queries,
            atoms_per_window_keys=cfg.atoms_per_window_keys,
            atom_encoder_depth=cfg.atom_encoder_depth,
            atom_encoder_heads=cfg.atom_encoder_heads,
            token_transformer_depth=cfg.token_transformer_depth,
            token_transformer_heads=cfg.token_transformer_heads,
            atom_decoder_depth=cfg.atom_decoder_depth,
            atom_decoder_heads=cfg.atom_decoder_heads,
            atom_feature_dim=cfg.atom_feature_dim,
            conditioning_transition_layers=cfg.conditioning_transition_layers,
            use_no_atom_char=cfg.use_no_atom_char,
            use_atom_backbone_feat=cfg.use_atom_backbone_feat,
            use_residue_feats_atoms=cfg.use_residue_feats_atoms,
        )
        self.score_model = DiffusionModule(cfg)

    def condition(
        self, feats: Mapping[str, torch.Tensor], s_trunk: torch.Tensor, z_trunk: torch.Tensor
    ) -> Boltz2Conditioning:
        """The noise-independent conditioning; compute once and reuse across sampling steps."""
        feats, _ = pad_atoms(feats, self.cfg.atoms_per_window_queries)
        return self.conditioning(s_trunk, z_trunk, self.rel_pos(feats), feats)

    def denoise(
        self,
        x_noisy: torch.Tensor,
        sigma: torch.Tensor,
        times: torch.Tensor,
        frame_mask: torch.Tensor,
        feats: Mapping[str, torch.Tensor],
        s_inputs: torch.Tensor,
        s_trunk: torch.Tensor,
        cond: Boltz2Conditioning,
    ) -> torch.Tensor:
        """EDM-preconditioned denoiser per frame, given the conditioning from :meth:`condition`."""
        m = x_noisy.shape[2]
        feats, pad = pad_atoms(feats, self.cfg.atoms_per_window_queries)
        x = F.pad(x_noisy, (0, 0, 0, pad))
        c_in, c_skip, c_out, _ = preconditioning(sigma[..., None, None], self.cfg.sigma_data)
        r_update = self.score_model(
            s_inputs,
            s_trunk,
            c_in * x,
            boltz2_c_noise(sigma, self.cfg.sigma_data),
            feats,
            cond,
            times,
            sigma,
            frame_mask.bool(),
        )
        denoised = (c_skip * x + c_out * r_update)[:, :, :m]
        return torch.where((sigma == 0)[..., None, None], x_noisy, denoised)

    @property
    def trunk_widths(self) -> tuple[int, int]:
        """(c_s, c_z) of the trunk embeddings this network reads."""
        return self.cfg.token_s, self.cfg.token_z

    def denoiser(self, batch: Mapping[str, torch.Tensor]) -> Denoiser:
        """``denoise(x_noisy, sigma)`` for one batch, its conditioning computed once."""
        feats = features_from_batch(batch)
        cond = self.condition(feats, batch["s_trunk"], batch["z_trunk"])
        atom_mask = batch["atom_mask"][:, None, :, None]

        def denoise(x_noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            out = self.denoise(
                x_noisy,
                sigma,
                batch["times"],
                batch["frame_mask"],
                feats,
                batch["s_inputs"],
                batch["s_trunk"],
                cond,
            )
            return out * atom_mask

        return denoise

    def forward(
        self, batch: Mapping[str, torch.Tensor], x_noisy: torch.Tensor, sigma: torch.Tensor
    ) -> torch.Tensor:
        """Denoise a batch of ours (see :func:`features_from_batch`), like ``DiffusionNetwork``."""
        return self.denoiser(batch)(x_noisy, sigma)
