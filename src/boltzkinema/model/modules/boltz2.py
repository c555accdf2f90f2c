"""Composite modules of the Boltz-2 structure module, reimplemented with Boltz-2's parameter names
from the shared layers of :mod:`boltzkinema.model.layers`.

The computation follows ``boltz==2.2.1`` (``boltz.model.modules.{encodersv2, transformersv2,
diffusion_conditioning}``, ``boltz.model.layers.{attentionv2, transition}``) so that a Boltz-2
checkpoint loads by name and gives the same numbers. Two things differ from Boltz, neither
changes a single-frame result:

* Activations carry an explicit frame axis, (B, T, ...) instead of Boltz's (B·T, ...) with a
  ``multiplicity``. Whatever does not depend on the frame (atom conditioning ``c``, pair biases,
  masks) keeps a frame axis of size 1 and is broadcast, never copied per frame.
* Each :class:`DiffusionTransformerLayer` may hold a :class:`TemporalAttention` right after its
  spatial attention (our addition, DESIGN §4). Its output projection starts at zero, so a fresh
  layer adds exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from boltzkinema.model.layers.attention import AttentionPairBias, TemporalAttention
from boltzkinema.model.layers.embedding import FourierEmbedding
from boltzkinema.model.layers.precision import float32_region
from boltzkinema.model.layers.token_maps import (
    gather_tokens,
    mean_over_atoms,
    pair_gather,
    token_index,
)
from boltzkinema.model.layers.transition import AdaLN, ConditionedTransitionBlock, Transition

NAME_CHARS, NAME_CLASSES = 4, 64  # ref_atom_name_chars: 4 characters, one-hot over 64 codes.
MOL_TYPES = 4

KeyFn = Callable[[torch.Tensor], torch.Tensor]


class SingleConditioning(nn.Module):
    """Token conditioning from the trunk plus the Fourier-embedded noise level (Algorithm 21)."""

    def __init__(self, token_s: int, dim_fourier: int, num_transitions: int):
        super().__init__()
        self.norm_single = nn.LayerNorm(2 * token_s)
        self.single_embed = nn.Linear(2 * token_s, 2 * token_s)
        self.fourier_embed = FourierEmbedding(dim_fourier)
        self.norm_fourier = nn.LayerNorm(dim_fourier)
        self.fourier_to_single = nn.Linear(dim_fourier, 2 * token_s, bias=False)
        self.transitions = nn.ModuleList(
            Transition(2 * token_s, 4 * token_s) for _ in range(num_transitions)
        )

    def forward(
        self,
        c_noise: torch.Tensor,
        s_trunk: torch.Tensor,
        s_inputs: torch.Tensor,
        noised: torch.Tensor | None = None,
        frame: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """c_noise (B, T); s_trunk, s_inputs (B, N, token_s) → s (B, T, N, 2·token_s).

        Our additions (neither is in Boltz): ``noised`` (B, T) bool keeps the noise embedding
        only where True (given frames carry none), ``frame`` (B, T, 2·token_s) is added per frame.
        """
        s = self.single_embed(self.norm_single(torch.cat((s_trunk, s_inputs), dim=-1)))
        noise = self.fourier_to_single(self.norm_fourier(self.fourier_embed(c_noise)))
        if noised is not None:
            noise = noise * noised[..., None].to(noise.dtype)
        if frame is not None:
            noise = noise + frame
        s = noise[:, :, None] + s[:, None]
        for transition in self.transitions:
            s = transition(s) + s
        return s


class PairwiseConditioning(nn.Module):
    """Pair conditioning: trunk pair representation joined with the relative position encoding."""

    def __init__(self, token_z: int, num_transitions: int):
        super().__init__()
        self.dim_pairwise_init_proj = nn.Sequential(
            nn.LayerNorm(2 * token_z), nn.Linear(2 * token_z, token_z, bias=False)
        )
        self.transitions = nn.ModuleList(
            Transition(token_z, 2 * token_z) for _ in range(num_transitions)
        )

    def forward(self, z_trunk: torch.Tensor, rel_pos: torch.Tensor) -> torch.Tensor:
        z = self.dim_pairwise_init_proj(torch.cat((z_trunk, rel_pos), dim=-1))
        for transition in self.transitions:
            z = transition(z) + z
        return z


def single_to_keys(x: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """Per-atom values (..., M, D) → the keys of every query window (..., M/W, H, D).

    Boltz's ``get_indexing_matrix`` + ``single_to_keys``: window k of W queries sees the H atoms
    centred on it, H / (W/2) consecutive half-windows, those outside the sequence zeros. Boltz
    picks them with a (2K, H/(W/2)·K) one-hot product, O(M²); here a strided view of the
    zero-padded half-windows (unfold) gathers the same values in O(M·H).
    """
    if w % 2 or h % (w // 2) or (h // (w // 2)) % 2:
        raise ValueError(f"atom windows need W even and H an even multiple of W/2, got {w}, {h}")
    *lead, m, d = x.shape
    k, halves = m // w, h // (w // 2)
    pad = halves // 2 - 1
    x = F.pad(x.reshape(*lead, 2 * k, w // 2, d), (0, 0, 0, 0, pad, pad))
    keys = x.unfold(-3, halves, 2).movedim(-1, -3)  # (..., K, halves, W/2, D)
    return keys.reshape(*lead, k, h, d)


def windowed(x: torch.Tensor, w: int) -> torch.Tensor:
    """(..., M, D) → (..., M/W, W, D): atoms grouped into query windows."""
    return x.unflatten(-2, (x.shape[-2] // w, w))


@dataclass
class Boltz2Conditioning:
    """What Boltz-2's ``DiffusionConditioning`` hands the score model; independent of noise.

    q, c (B, M, atom_s); the three biases hold every layer's heads along the last axis:
    atom biases (B, M/W, W, H, depth·heads), token bias (B, N, N, depth·heads).
    """

    q: torch.Tensor
    c: torch.Tensor
    to_keys: KeyFn
    atom_enc_bias: torch.Tensor
    atom_dec_bias: torch.Tensor
    token_trans_bias: torch.Tensor


class AtomEncoder(nn.Module):
    """Per-atom and windowed atom-pair features from reference conformers and the trunk.

    Reads ``ref_pos`` (B, M, 3), ``ref_charge`` (B, M), ``ref_element`` (B, M, 128),
    ``ref_atom_name_chars`` (B, M, 4, 64) unless ``use_no_atom_char``, ``ref_space_uid`` (B, M),
    ``atom_pad_mask`` (B, M), ``atom_to_token`` (B, M, N) one-hot, and optionally
    ``atom_backbone_feat`` or ``res_type``/``modified``/``mol_type``. M must be a multiple of W.
    """

    def __init__(
        self,
        atom_s: int,
        atom_z: int,
        token_s: int,
        token_z: int,
        atoms_per_window_queries: int,
        atoms_per_window_keys: int,
        atom_feature_dim: int,
        use_no_atom_char: bool = False,
        use_atom_backbone_feat: bool = False,
        use_residue_feats_atoms: bool = False,
    ):
        super().__init__()
        self.w, self.h = atoms_per_window_queries, atoms_per_window_keys
        self.use_no_atom_char = use_no_atom_char
        self.use_atom_backbone_feat = use_atom_backbone_feat
        self.use_residue_feats_atoms = use_residue_feats_atoms
        self.embed_atom_features = nn.Linear(atom_feature_dim, atom_s)
        self.embed_atompair_ref_pos = nn.Linear(3, atom_z, bias=False)
        self.embed_atompair_ref_dist = nn.Linear(1, atom_z, bias=False)
        self.embed_atompair_mask = nn.Linear(1, atom_z, bias=False)
        self.s_to_c_trans = nn.Sequential(
            nn.LayerNorm(token_s), nn.Linear(token_s, atom_s, bias=False)
        )
        self.z_to_p_trans = nn.Sequential(
            nn.LayerNorm(token_z), nn.Linear(token_z, atom_z, bias=False)
        )
        self.c_to_p_trans_k = nn.Sequential(nn.ReLU(), nn.Linear(atom_s, atom_z, bias=False))
        self.c_to_p_trans_q = nn.Sequential(nn.ReLU(), nn.Linear(atom_s, atom_z, bias=False))
        self.p_mlp = nn.Sequential(
            nn.ReLU(),
            nn.Linear(atom_z, atom_z, bias=False),
            nn.ReLU(),
            nn.Linear(atom_z, atom_z, bias=False),
            nn.ReLU(),
            nn.Linear(atom_z, atom_z, bias=False),
        )

    def atom_features(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The per-atom input vector, in Boltz's order."""
        b, m, _ = feats["ref_pos"].shape
        parts = [feats["ref_pos"], feats["ref_charge"].unsqueeze(-1), feats["ref_element"]]
        if not self.use_no_atom_char:
            parts.append(feats["ref_atom_name_chars"].reshape(b, m, NAME_CHARS * NAME_CLASSES))
        if self.use_atom_backbone_feat:
            parts.append(feats["atom_backbone_feat"])
        if self.use_residue_feats_atoms:
            res_feats = torch.cat(
                [
                    feats["res_type"],
                    feats["modified"].unsqueeze(-1),
                    F.one_hot(feats["mol_type"], num_classes=MOL_TYPES).float(),
                ],
                dim=-1,
            )
            parts.append(gather_tokens(res_feats, *token_index(feats["atom_to_token"])))
        return torch.cat(parts, dim=-1)

    def forward(
        self, feats: Mapping[str, torch.Tensor], s_trunk: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, KeyFn]:
        """→ q, c (B, M, atom_s), p (B, M/W, W, H, atom_z), and the queries-to-keys map."""
        ref_pos = feats["ref_pos"]
        with float32_region(ref_pos):
            b, m, _ = ref_pos.shape
            w, h = self.w, self.h
            k = m // w
            atom_mask = feats["atom_pad_mask"].bool()
            uid = feats["ref_space_uid"]
            c = self.embed_atom_features(self.atom_features(feats))
            to_keys = partial(single_to_keys, w=w, h=h)

            d = to_keys(ref_pos).view(b, k, 1, h, 3) - ref_pos.view(b, k, w, 1, 3)
            d_norm = 1 / (1 + torch.sum(d * d, dim=-1, keepdim=True))
            mask_keys = to_keys(atom_mask.unsqueeze(-1).float()).view(b, k, 1, h).bool()
            uid_keys = to_keys(uid.unsqueeze(-1).float()).view(b, k, 1, h).long()
            v = (
                (atom_mask.view(b, k, w, 1) & mask_keys & (uid.view(b, k, w, 1) == uid_keys))
                .float()
                .unsqueeze(-1)
            )
            p = self.embed_atompair_ref_pos(d) * v
            p = p + self.embed_atompair_ref_dist(d_norm) * v
            p = p + self.embed_atompair_mask(v) * v

            q = c
            token, has = token_index(feats["atom_to_token"])
            c = c + gather_tokens(self.s_to_c_trans(s_trunk.float()), token, has).to(c)
            z_to_p = pair_gather(
                self.z_to_p_trans(z.float()),
                token.view(b, k, w),
                has.view(b, k, w),
                to_keys(token[..., None].float()).squeeze(-1).long(),
                to_keys(has[..., None].float()).squeeze(-1) > 0,
            )
            p = p + z_to_p.to(p)
            p = p + self.c_to_p_trans_q(c.view(b, k, w, 1, c.shape[-1]))
            p = p + self.c_to_p_trans_k(to_keys(c).view(b, k, 1, h, c.shape[-1]))
            p = p + self.p_mlp(p)
        return q, c, p, to_keys


def bias_projections(depth: int, dim: int, heads: int) -> nn.ModuleList:
    """One LayerNorm + linear per transformer layer, turning pair features into head biases."""
    return nn.ModuleList(
        nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, heads, bias=False)) for _ in range(depth)
    )


class DiffusionConditioning(nn.Module):
    """Noise-independent conditioning of Boltz-2's score model, computed once per structure."""

    def __init__(
        self,
        token_s: int,
        token_z: int,
        atom_s: int,
        atom_z: int,
        atoms_per_window_queries: int,
        atoms_per_window_keys: int,
        atom_encoder_depth: int,
        atom_encoder_heads: int,
        token_transformer_depth: int,
        token_transformer_heads: int,
        atom_decoder_depth: int,
        atom_decoder_heads: int,
        atom_feature_dim: int,
        conditioning_transition_layers: int,
        use_no_atom_char: bool = False,
        use_atom_backbone_feat: bool = False,
        use_residue_feats_atoms: bool = False,
    ):
        super().__init__()
        self.pairwise_conditioner = PairwiseConditioning(token_z, conditioning_transition_layers)
        self.atom_encoder = AtomEncoder(
            atom_s,
            atom_z,
            token_s,
            token_z,
            atoms_per_window_queries,
            atoms_per_window_keys,
            atom_feature_dim,
            use_no_atom_char,
            use_atom_backbone_feat,
            use_residue_feats_atoms,
        )
        self.atom_enc_proj_z = bias_projections(atom_encoder_depth, atom_z, atom_encoder_heads)
        self.atom_dec_proj_z = bias_projections(atom_decoder_depth, atom_z, atom_decoder_heads)
        self.token_trans_proj_z = bias_projections(
            token_transformer_depth, token_z, token_transformer_heads
        )

    def forward(
        self,
        s_trunk: torch.Tensor,
        z_trunk: torch.Tensor,
        rel_pos: torch.Tensor,
        feats: Mapping[str, torch.Tensor],
    ) -> Boltz2Conditioning:
        z = self.pairwise_conditioner(z_trunk, rel_pos)
        q, c, p, to_keys = self.atom_encoder(feats, s_trunk, z)
        return Boltz2Conditioning(
            q=q,
            c=c,
            to_keys=to_keys,
            atom_enc_bias=torch.cat([layer(p) for layer in self.atom_enc_proj_z], dim=-1),
            atom_dec_bias=torch.cat([layer(p) for layer in self.atom_dec_proj_z], dim=-1),
            token_trans_bias=torch.cat([layer(z) for layer in self.token_trans_proj_z], dim=-1),
        )


class DiffusionTransformerLayer(nn.Module):
    """AdaLN → pair-biased attention (gated) → [temporal attention] → conditioned transition."""

    def __init__(
        self,
        heads: int,
        dim: int,
        dim_single_cond: int,
        post_layer_norm: bool = False,
        temporal: TemporalAttention | None = None,
    ):
        super().__init__()
        self.adaln = AdaLN(dim, dim_single_cond)
        self.pair_bias_attn = AttentionPairBias(dim, heads)
        # Boltz registers this linear twice (also as output_projection.0), so its checkpoint
        # holds both names; we keep the same structure to keep the same names.
        self.output_projection_linear = nn.Linear(dim_single_cond, dim)
        nn.init.zeros_(self.output_projection_linear.weight)
        nn.init.constant_(self.output_projection_linear.bias, -2.0)
        self.output_projection = nn.Sequential(self.output_projection_linear, nn.Sigmoid())
        self.transition = ConditionedTransitionBlock(dim, dim_single_cond)
        self.post_lnorm = nn.LayerNorm(dim) if post_layer_norm else nn.Identity()
        self.temporal = temporal

    def forward(
        self,
        a: torch.Tensor,
        s: torch.Tensor,
        bias: torch.Tensor,
        mask: torch.Tensor,
        to_keys: KeyFn | None,
        dt: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """a (B, T, ..., L, C); s broadcastable to a; dt (B, T, T); frame_mask (B, T)."""
        b = self.adaln(a, s)
        k_in = b if to_keys is None else to_keys(b)
        a = a + self.output_projection(s) * self.pair_bias_attn(b, bias, mask, k_in)
        if self.temporal is not None:
            a = self.temporal(a.flatten(2, -2), dt, frame_mask).view_as(a)
        a = a + self.transition(a, s)
        return self.post_lnorm(a)


class DiffusionTransformer(nn.Module):
    """A stack of :class:`DiffusionTransformerLayer` (Algorithm 23), one bias slice per layer.

    With ``temporal_causal`` set to None the stack has no temporal layers (pure Boltz-2).
    """

    def __init__(
        self,
        depth: int,
        heads: int,
        dim: int,
        dim_single_cond: int,
        post_layer_norm: bool = False,
        temporal_causal: bool | None = False,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.activation_checkpointing = activation_checkpointing
        self.layers = nn.ModuleList(
            DiffusionTransformerLayer(
                heads,
                dim,
                dim_single_cond,
                post_layer_norm,
                None if temporal_causal is None else TemporalAttention(dim, heads, temporal_causal),
            )
            for _ in range(depth)
        )

    def forward(
        self,
        a: torch.Tensor,
        s: torch.Tensor,
        bias: torch.Tensor,
        mask: torch.Tensor,
        to_keys: KeyFn | None,
        dt: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """bias (B, ..., Q, K, depth·heads): layer i uses heads [i·heads, (i+1)·heads)."""
        bias = bias.unflatten(-1, (len(self.layers), -1))
        for i, layer in enumerate(self.layers):
            bias_i = bias[..., i, :].movedim(-1, -3).unsqueeze(1)  # (B, 1, ..., heads, Q, K)
            args = (a, s, bias_i, mask, to_keys, dt, frame_mask)
            if self.activation_checkpointing and self.training:
                a = checkpoint(layer, *args, use_reentrant=False)
            else:
                a = layer(*args)
        return a


class AtomTransformer(nn.Module):
    """Sequence-local atom attention (Algorithm 7): W queries per window see H keys around them."""

    def __init__(
        self,
        attn_window_queries: int,
        attn_window_keys: int,
        depth: int,
        heads: int,
        dim: int,
        post_layer_norm: bool = False,
        temporal_causal: bool | None = False,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.w = attn_window_queries
        self.diffusion_transformer = DiffusionTransformer(
            depth, heads, dim, dim, post_layer_norm, temporal_causal, activation_checkpointing
        )

    def forward(
        self,
        q: torch.Tensor,
        c: torch.Tensor,
        bias: torch.Tensor,
        to_keys: KeyFn,
        mask: torch.Tensor,
        dt: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """q (B, T, M, C); c (B, 1, M, C); bias (B, M/W, W, H, depth·heads); mask (B, M)."""
        key_mask = to_keys(mask.unsqueeze(-1).float()).squeeze(-1).unsqueeze(1)  # (B, 1, K, H)
        out = self.diffusion_transformer(
            windowed(q, self.w),
            windowed(c, self.w),
            bias,
            key_mask,
            lambda x: to_keys(x.flatten(-3, -2)),
            dt,
            frame_mask,
        )
        return out.flatten(-3, -2)


class AtomAttentionEncoder(nn.Module):
    """Noisy positions into atom queries, atom transformer, mean-pool atoms to tokens."""

    def __init__(
        self,
        atom_s: int,
        token_s: int,
        atoms_per_window_queries: int,
        atoms_per_window_keys: int,
        atom_encoder_depth: int,
        atom_encoder_heads: int,
        transformer_post_layer_norm: bool = False,
        temporal_causal: bool | None = False,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.r_to_q_trans = nn.Linear(3, atom_s, bias=False)
        self.atom_encoder = AtomTransformer(
            atoms_per_window_queries,
            atoms_per_window_keys,
            atom_encoder_depth,
            atom_encoder_heads,
            atom_s,
            transformer_post_layer_norm,
            temporal_causal,
            activation_checkpointing,
        )
        self.atom_to_token_trans = nn.Sequential(
            nn.Linear(atom_s, 2 * token_s, bias=False), nn.ReLU()
        )

    def forward(
        self,
        cond: Boltz2Conditioning,
        r: torch.Tensor,
        atom_mask: torch.Tensor,
        atom_to_token: torch.Tensor,
        dt: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """r (B, T, M, 3) scaled noisy positions → tokens (B, T, N, 2·token_s), q, c."""
        q = cond.q.float()[:, None] + self.r_to_q_trans(r)
        c = cond.c.float()[:, None]
        q = self.atom_encoder(
            q, c, cond.atom_enc_bias.float(), cond.to_keys, atom_mask, dt, frame_mask
        )
        with float32_region(q):
            q_to_a = self.atom_to_token_trans(q).float()
            token, has = token_index(atom_to_token)
            a = mean_over_atoms(q_to_a, token, has, atom_to_token.shape[-1], eps=1e-6)
        return a.to(q), q, c


class AtomAttentionDecoder(nn.Module):
    """Broadcast tokens back to atoms, atom transformer, per-atom position update (Algorithm 6)."""

    def __init__(
        self,
        atom_s: int,
        token_s: int,
        attn_window_queries: int,
        attn_window_keys: int,
        atom_decoder_depth: int,
        atom_decoder_heads: int,
        temporal_causal: bool | None = False,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.a_to_q_trans = nn.Linear(2 * token_s, atom_s, bias=False)
        self.atom_decoder = AtomTransformer(
            attn_window_queries,
            attn_window_keys,
            atom_decoder_depth,
            atom_decoder_heads,
            atom_s,
            temporal_causal=temporal_causal,
            activation_checkpointing=activation_checkpointing,
        )
        self.atom_feat_to_atom_pos_update = nn.Sequential(
            nn.LayerNorm(atom_s), nn.Linear(atom_s, 3, bias=False)
        )

    def forward(
        self,
        a: torch.Tensor,
        q: torch.Tensor,
        c: torch.Tensor,
        cond: Boltz2Conditioning,
        atom_mask: torch.Tensor,
        atom_to_token: torch.Tensor,
        dt: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """a (B, T, N, 2·token_s); q (B, T, M, atom_s); c (B, 1, M, atom_s) → (B, T, M, 3)."""
        with float32_region(a):
            a_to_q = gather_tokens(self.a_to_q_trans(a.float()), *token_index(atom_to_token))
        q = q + a_to_q.to(q)
        q = self.atom_decoder(
            q, c, cond.atom_dec_bias.float(), cond.to_keys, atom_mask, dt, frame_mask
        )
        return self.atom_feat_to_atom_pos_update(q)
