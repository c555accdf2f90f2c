"""Build the Boltz-2 equivalence fixtures in ``tests/data/boltz2/`` with the real ``boltz`` package.

Re-run (from the repository root, in the separate venv that has ``boltz==2.2.1``, RDKit and
safetensors installed; nothing is downloaded)::

    .venv-boltz/bin/python scripts/make_boltz2_fixtures.py

It writes

* ``tiny_boltz2.ckpt``: a tiny ``boltz.model.models.boltz2.Boltz2`` (token_s 32, token_z 16,
  atom_s 16, atom_z 8, two blocks per atom transformer, one per token transformer and
  trunk stack, two heads) in
  Lightning's layout (``state_dict``, ``hyper_parameters`` of plain Python values,
  ``pytorch-lightning_version``, ``epoch``, ``global_step``). Seed 0. Every parameter is drawn
  afresh (weights N(0, 1/fan_in), norms 1 + N(0, 0.1²), biases N(0, 0.1²)): Boltz initialises
  many output projections to zero, and with those the score network's update would be exactly
  zero and the test would compare nothing. The file is checked to load with
  ``torch.load(weights_only=True)`` and with ``Boltz2.load_from_checkpoint(strict=True)``.
* ``omegaconf_hparams.ckpt``: the same hyper-parameters with every ``*_args`` mapping stored as
  an OmegaConf ``DictConfig``, as in Boltz's released checkpoints (trained from Hydra configs),
  and a state dict with only ``rel_pos``: checks that our reader handles that layout.
* ``diffusion_io.safetensors``: the inputs and outputs of
  ``Boltz2.structure_module.preconditioned_network_forward`` (diffusion conditioning and
  ``rel_pos`` computed by Boltz-2 itself) for the peptide AGSKF plus a phenol ligand, at two
  noise levels: ``sigma.<i>``, ``x_noisy.<i>`` → ``denoised.<i>``, with ``s_inputs``,
  ``s_trunk``, ``z_trunk`` and the Boltz feature tensors under ``feats.<name>``.

Boltz's own featuriser needs the CCD/molecule archive from the internet, so the features are
built here by hand in Boltz's conventions: one token per residue and one per ligand atom;
``ref_pos`` is an RDKit conformer of each residue (ligand) about its own centroid; atom names,
elements and charges as Boltz one-hot encodes them; 43 atoms padded to 64 and 12 tokens padded
to 14. The trunk outputs (``s_inputs``, ``s_trunk``, ``z_trunk``) are random, as the trunk is not
part of what is compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning
import torch
from boltz.model.models.boltz2 import Boltz2
from omegaconf import OmegaConf
from rdkit import Chem
from rdkit.Chem import AllChem
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "boltz2"
SEED = 0
SEQUENCE = "AGSKF"
LIGAND_SMILES = "Oc1ccccc1"
N_ATOMS, N_TOKENS = 64, 14
SIGMAS = (4.0, 48.0)
NUM_ELEMENTS, NAME_CLASSES = 128, 64

SCORE_MODEL_ARGS = dict(
    sigma_data=16,
    dim_fourier=32,
    atom_encoder_depth=2,
    atom_encoder_heads=2,
    token_transformer_depth=1,
    token_transformer_heads=2,
    atom_decoder_depth=2,
    atom_decoder_heads=2,
    conditioning_transition_layers=2,
    activation_checkpointing=False,
    transformer_post_ln=False,
)
TRAINING_ARGS = dict(
    base_lr=1e-4,
    max_lr=1e-4,
    weight_decay=0.0,
    lr_scheduler="af3",
    diffusion_multiplicity=1,
    recycling_steps=0,
)


def tiny_boltz2() -> Boltz2:
    """A small Boltz-2 with all of its diffusion-side modules, randomly initialised."""
    # Boltz's own initialisation (torch and scipy RNGs) is overwritten below, value by value.
    model = Boltz2(
        atom_s=16,
        atom_z=8,
        token_s=32,
        token_z=16,
        num_bins=16,
        training_args=TRAINING_ARGS,
        validation_args=dict(recycling_steps=0, sampling_steps=2, diffusion_samples=1),
        embedder_args=dict(atom_encoder_depth=1, atom_encoder_heads=2),
        msa_args=dict(
            msa_s=8,
            msa_blocks=1,
            msa_dropout=0.0,
            z_dropout=0.0,
            pairwise_head_width=8,
            pairwise_num_heads=2,
        ),
        pairformer_args=dict(
            num_blocks=1, num_heads=2, dropout=0.0, pairwise_head_width=8, pairwise_num_heads=2
        ),
        score_model_args=SCORE_MODEL_ARGS,
        diffusion_process_args=dict(sigma_data=16.0, sigma_min=1e-4, sigma_max=160.0),
        diffusion_loss_args=dict(add_smooth_lddt_loss=True),
        atom_feature_dim=3 + 1 + NUM_ELEMENTS + 4 * NAME_CLASSES,
        confidence_prediction=False,
        validate_structure=False,
    )
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def assert_plain(value: object, where: str = "hyper_parameters") -> None:
    """Only what torch.load(weights_only=True) accepts: primitives, lists, tuples, dicts."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{where}: key {k!r}"
            assert_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            assert_plain(v, f"{where}[{i}]")
    else:
        assert value is None or isinstance(value, bool | int | float | str), f"{where}: {value!r}"


def save_checkpoint(model: Boltz2, path: Path) -> None:
    """Write the Lightning layout and check that both loaders accept it."""
    hparams = dict(model.hparams)
    assert_plain(hparams)
    state = model.state_dict()  # as Lightning saves it: shared parameters stored once
    ckpt = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": pytorch_lightning.__version__,
        "state_dict": state,
        "hyper_parameters": hparams,
    }
    torch.save(ckpt, path)
    assert torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"] == hparams
    # Boltz2.on_load_checkpoint reads training_args by attribute, as from the OmegaConf config
    # Boltz is trained with; hand it one so the plain dict in the file can stay plain.
    back = Boltz2.load_from_checkpoint(
        path,
        strict=True,
        map_location="cpu",
        training_args=OmegaConf.create(TRAINING_ARGS),
    )
    for k, v in back.state_dict().items():
        assert torch.equal(v, state[k]), k


def save_omegaconf_variant(model: Boltz2, path: Path) -> None:
    """Hyper-parameters as OmegaConf containers, the way Boltz's own checkpoints hold them."""
    hparams = {
        k: OmegaConf.create(v) if isinstance(v, dict) else v for k, v in model.hparams.items()
    }
    state = {k: v for k, v in model.state_dict().items() if k.startswith("rel_pos.")}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)


def embed(mol: Chem.Mol, seed: int) -> np.ndarray:
    """Heavy-atom coordinates of one RDKit conformer (with hydrogens during embedding)."""
    mol_h = Chem.AddHs(mol)
    assert AllChem.EmbedMolecule(mol_h, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol_h)
    xyz = mol_h.GetConformer().GetPositions()
    return xyz[[a.GetIdx() for a in mol_h.GetAtoms() if a.GetAtomicNum() > 1]]


def name_chars(name: str) -> np.ndarray:
    """Boltz's atom-name encoding: 4 characters, each one-hot over ord(c) − 32."""
    out = np.zeros((4, NAME_CLASSES), dtype=np.float32)
    for i, ch in enumerate(name.ljust(4)[:4]):
        out[i, ord(ch) - 32] = 1
    return out


def build_system() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Boltz feature tensors (batch of 1, padded) and centred true coordinates (1, M, 3)."""
    peptide = Chem.MolFromSequence(SEQUENCE)
    ligand = Chem.MolFromSmiles(LIGAND_SMILES)
    pep_true, pep_ref = embed(peptide, 1), embed(peptide, 2)
    lig_true, lig_ref = embed(ligand, 3), embed(ligand, 4)
    lig_true = lig_true - lig_true.mean(0) + pep_true.mean(0) + np.array([7.0, 0.0, 0.0])

    atoms = []  # (name, element, charge, token, ref_space_uid, true xyz, ref xyz)
    residue = [a.GetPDBResidueInfo().GetResidueNumber() - 1 for a in peptide.GetAtoms()]
    for res in range(len(SEQUENCE)):
        idx = [i for i, r in enumerate(residue) if r == res]
        centre = pep_ref[idx].mean(0)
        for i in idx:
            a = peptide.GetAtomWithIdx(i)
            name = a.GetPDBResidueInfo().GetName().strip()
            atoms.append(
                (
                    name,
                    a.GetAtomicNum(),
                    a.GetFormalCharge(),
                    res,
                    res,
                    pep_true[i],
                    pep_ref[i] - centre,
                )
            )
    counts: dict[str, int] = {}
    for i, a in enumerate(ligand.GetAtoms()):
        counts[a.GetSymbol()] = counts.get(a.GetSymbol(), 0) + 1
        name = f"{a.GetSymbol()}{counts[a.GetSymbol()]}"
        token = len(SEQUENCE) + i
        ref = lig_ref[i] - lig_ref.mean(0)
        atoms.append(
            (name, a.GetAtomicNum(), a.GetFormalCharge(), token, len(SEQUENCE), lig_true[i], ref)
        )
    m, n_real = len(atoms), len(SEQUENCE) + ligand.GetNumAtoms()
    assert m <= N_ATOMS and n_real <= N_TOKENS

    f = {
        "ref_pos": np.zeros((N_ATOMS, 3), np.float32),
        "ref_charge": np.zeros(N_ATOMS, np.float32),
        "ref_element": np.zeros((N_ATOMS, NUM_ELEMENTS), np.float32),
        "ref_atom_name_chars": np.zeros((N_ATOMS, 4, NAME_CLASSES), np.float32),
        "ref_space_uid": np.zeros(N_ATOMS, np.int64),
        "atom_pad_mask": np.zeros(N_ATOMS, np.float32),
        "atom_to_token": np.zeros((N_ATOMS, N_TOKENS), np.float32),
    }
    coords = np.zeros((N_ATOMS, 3), np.float32)
    for i, (name, z, charge, token, uid, xyz, ref) in enumerate(atoms):
        f["ref_pos"][i] = ref
        f["ref_charge"][i] = charge
        f["ref_element"][i, z] = 1
        f["ref_atom_name_chars"][i] = name_chars(name)
        f["ref_space_uid"][i] = uid
        f["atom_pad_mask"][i] = 1
        f["atom_to_token"][i, token] = 1
        coords[i] = xyz
    coords[:m] -= coords[:m].mean(0)

    is_ligand = np.arange(N_TOKENS) >= len(SEQUENCE)
    real = np.arange(N_TOKENS) < n_real
    f["asym_id"] = np.where(real & is_ligand, 1, 0).astype(np.int64)
    f["entity_id"] = f["asym_id"].copy()
    f["sym_id"] = np.zeros(N_TOKENS, np.int64)
    f["residue_index"] = np.where(is_ligand, 0, np.arange(N_TOKENS)).astype(np.int64)
    f["token_index"] = np.where(real, np.arange(N_TOKENS), 0).astype(np.int64)
    f["cyclic_period"] = np.zeros(N_TOKENS, np.int64)
    f["token_pad_mask"] = real.astype(np.float32)
    feats = {k: torch.from_numpy(v)[None] for k, v in f.items()}
    return feats, torch.from_numpy(coords)[None]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = tiny_boltz2()
    save_checkpoint(model, OUT / "tiny_boltz2.ckpt")
    save_omegaconf_variant(model, OUT / "omegaconf_hparams.ckpt")

    feats, coords = build_system()
    g = torch.Generator().manual_seed(SEED + 1)
    hp = model.hparams
    s_inputs = torch.randn(1, N_TOKENS, hp.token_s, generator=g)
    s_trunk = torch.randn(1, N_TOKENS, hp.token_s, generator=g)
    z_trunk = torch.randn(1, N_TOKENS, N_TOKENS, hp.token_z, generator=g)

    record = {f"feats.{k}": v for k, v in feats.items()}
    record |= {"s_inputs": s_inputs, "s_trunk": s_trunk, "z_trunk": z_trunk}
    with torch.no_grad():
        rel_pos = model.rel_pos(feats)
        q, c, to_keys, enc_bias, dec_bias, token_bias = model.diffusion_conditioning(
            s_trunk=s_trunk, z_trunk=z_trunk, relative_position_encoding=rel_pos, feats=feats
        )
        conditioning = {
            "q": q,
            "c": c,
            "to_keys": to_keys,
            "atom_enc_bias": enc_bias,
            "atom_dec_bias": dec_bias,
            "token_trans_bias": token_bias,
        }
        for i, sigma in enumerate(SIGMAS):
            x_noisy = coords + sigma * torch.randn(coords.shape, generator=g)
            denoised = model.structure_module.preconditioned_network_forward(
                x_noisy,
                sigma,
                network_condition_kwargs=dict(
                    s_inputs=s_inputs,
                    s_trunk=s_trunk,
                    feats=feats,
                    multiplicity=1,
                    diffusion_conditioning=conditioning,
                ),
            )
            record[f"sigma.{i}"] = torch.tensor([sigma])
            record[f"x_noisy.{i}"] = x_noisy
            record[f"denoised.{i}"] = denoised
    record = {k: v.contiguous() for k, v in record.items()}
    assert all(v.dtype in (torch.float32, torch.int64) for v in record.values())
    save_file(record, OUT / "diffusion_io.safetensors")
    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(OUT.parents[2])}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
