"""The layer library: one implementation per layer, assembled by both networks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from boltzkinema.model.boltz2_weights import network_from_checkpoint
from boltzkinema.model.layers.attention import TemporalAttention
from boltzkinema.model.layers.embedding import FourierEmbedding
from boltzkinema.model.layers.frames import FrameConditioning
from boltzkinema.model.network import DiffusionNetwork, ModelConfig

CKPT = Path(__file__).parent / "data" / "boltz2" / "tiny_boltz2.ckpt"
SMALL = dict(c_s=16, c_z=8, c_atom=32, c_token=32, atom_heads=4, token_heads=4,
             atom_encoder_blocks=1, token_blocks=1, atom_decoder_blocks=1)  # fmt: skip


@pytest.fixture(scope="module")
def networks() -> dict[str, nn.Module]:
    boltz, _ = network_from_checkpoint(CKPT)
    return {"native": DiffusionNetwork(ModelConfig(**SMALL)), "boltz2": boltz}


@pytest.mark.parametrize("seed", [None, 3])
def test_fourier_embedding_is_the_cosine_of_a_frozen_affine_map(seed):
    emb = FourierEmbedding(8, seed)
    w, b = (emb.proj.weight, emb.proj.bias) if seed is None else (emb.w, emb.b)
    x = torch.tensor([0.0, 0.5, -2.0])
    expected = torch.cos(2 * math.pi * (x[:, None] * w[:, 0] + b))
    assert torch.allclose(emb(x), expected, atol=1e-6)
    assert not any(p.requires_grad for p in emb.parameters())


def test_a_seeded_fourier_draw_is_rebuilt_not_saved_and_a_boltz_draw_is_saved():
    assert torch.equal(
        FourierEmbedding(8, seed=3)(torch.ones(2)), FourierEmbedding(8, 3)(torch.ones(2))
    )
    assert FourierEmbedding(8, seed=3).state_dict() == {}
    assert set(FourierEmbedding(8).state_dict()) == {"proj.weight", "proj.bias"}  # Boltz's names


def test_both_networks_assemble_the_same_shared_layers(networks):
    used = {name: {type(m) for m in net.modules()} for name, net in networks.items()}
    assert {FourierEmbedding, TemporalAttention, FrameConditioning} <= used["native"] & used[
        "boltz2"
    ]


def test_every_layer_that_holds_its_own_weights_lives_in_the_layer_library(networks):
    """Composite modules (the networks, their blocks) only hold other modules; a class of ours
    that holds a parameter or buffer itself is a layer, and layers live in model.layers."""
    for net in networks.values():
        for name, module in net.named_modules():
            owns = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
            origin = type(module).__module__
            if owns and origin.startswith("boltzkinema"):
                assert origin.startswith("boltzkinema.model.layers."), (name, origin)
