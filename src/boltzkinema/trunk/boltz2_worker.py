"""Run the Boltz-2 trunk on packed features; runs ONLY in the Boltz environment.

    python -m boltzkinema.trunk.boltz2_worker --checkpoint boltz2_conf.ckpt --serve
    python -m boltzkinema.trunk.boltz2_worker --checkpoint CKPT --input IN --output OUT

(with ``PYTHONPATH`` naming our ``src`` folder; the core package is not installed there). It
imports torch, numpy, safetensors and boltz, which the core environment never does.

The model is ``boltz.model.models.boltz2.Boltz2`` built from the checkpoint's
``hyper_parameters`` the way ``boltz predict`` builds it (keys its constructor does not take
are dropped; pairformer v2; the paired-MSA flag as the MSA projection's weights have it; no
dropout, kernels, compilation, confidence or affinity heads) and then only the trunk runs: input
embedder, pair initialisation, ``recycling_steps`` + 1 passes of recycling, MSA module and
pairformer. Templates are not built: with Boltz's dummy templates (no template given) the
template module adds exactly zero. Weights load strictly for the trunk's modules; the
checkpoint's other weights (diffusion, distogram, confidence, templates) are not used.

``--serve`` speaks JSON lines: one line when ready (``{"ready": true, "c_s", "c_z", ...}`` or
``{"ready": false, "error"}``), then per request line ``{"input": path, "output": path}`` one
answer ``{"ok": true, "seconds"}`` or ``{"ok": false, "error"}``; it stops at end of input.
Outputs are safetensors with float32 ``s_inputs`` (N, c_s), ``s_trunk`` (N, c_s) and
``z_trunk`` (N, N, c_z).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BOLTZ_VERSION = "2.2.1"  # the version whose featuriser boltz2_features reproduces
TRUNK_PREFIXES = (
    "input_embedder.",
    "s_init.",
    "z_init_1.",
    "z_init_2.",
    "rel_pos.",
    "token_bonds.",
    "token_bonds_type.",
    "contact_conditioning.",
    "s_norm.",
    "z_norm.",
    "s_recycle.",
    "z_recycle.",
    "msa_module.",
    "pairformer_module.",
)
UNUSED_MODULES = ("structure_module", "diffusion_conditioning", "distogram_module")
PRECISIONS = ("32", "bf16-mixed")


class WorkerError(RuntimeError):
    """A failure the worker reports to the backend with a message meant for the user."""


def _is_v1_leftover(key: str) -> bool:
    """Pairformer v1 attention kept a LayerNorm (``norm_s``) that the v2 attention has not."""
    parts = key.split(".")
    return key.startswith("pairformer_module.layers.") and parts[3:5] == ["attention", "norm_s"]


def _build(boltz2_class: Any, kwargs: dict[str, Any], fast: bool) -> Any:
    """Boltz2(**kwargs); with ``fast``, on the meta device and with a no-op weight init."""
    import torch
    from boltz.model.layers import initialize

    if not fast:
        return boltz2_class(**kwargs)
    original = initialize.trunc_normal_init_
    initialize.trunc_normal_init_ = lambda *args, **kw: None
    try:
        with torch.device("meta"):
            return boltz2_class(**kwargs)
    finally:
        initialize.trunc_normal_init_ = original


def load_model(checkpoint: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Boltz2 with the checkpoint's trunk weights, in eval mode on ``device``; and a summary."""
    import inspect
    from importlib.metadata import version

    import safetensors  # noqa: F401  (needed to exchange tensors; fail here, not later)
    import torch

    found = version("boltz")
    if found != BOLTZ_VERSION:
        raise WorkerError(
            f"this environment has boltz {found}; the boltz2 trunk backend reproduces the "
            f"featuriser of boltz {BOLTZ_VERSION}: install boltz=={BOLTZ_VERSION}"
        )
    from boltz.model.models.boltz2 import Boltz2

    from boltzkinema.errors import CheckpointError
    from boltzkinema.io.lightning_checkpoint import read_checkpoint
    from boltzkinema.trunk.boltz2_features import NUM_TOKENS

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise WorkerError(f"device {device!r} asked for, but torch sees no CUDA device here")
    try:
        ckpt = read_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise WorkerError(str(exc)) from None
    hp = dict(ckpt.get("hyper_parameters") or {})
    state = ckpt["state_dict"]
    if not hp:
        raise WorkerError(f"{checkpoint} has no hyper_parameters; cannot build the model")
    accepted = set(inspect.signature(Boltz2.__init__).parameters) - {"self", "validators"}
    dropped = sorted(k for k in hp if k not in accepted)
    kwargs = {k: v for k, v in hp.items() if k in accepted}
    pairformer = dict(kwargs.get("pairformer_args") or {})
    pairformer.update(v2=True, dropout=0.0, activation_checkpointing=False)
    msa = dict(kwargs.get("msa_args") or {})
    msa.update(msa_dropout=0.0, z_dropout=0.0, subsample_msa=False, activation_checkpointing=False)
    proj = state.get("msa_module.msa_proj.weight")
    if proj is not None:  # one-hot MSA, has_deletion, deletion_value (+ paired flag)
        msa["use_paired_feature"] = int(proj.shape[1]) == NUM_TOKENS + 3
    kwargs.update(
        pairformer_args=pairformer,
        msa_args=msa,
        confidence_prediction=False,
        affinity_prediction=False,
        validate_structure=False,
        use_templates=False,
        compile_pairformer=False,
        compile_structure=False,
        compile_confidence=False,
        compile_affinity=False,
        compile_msa=False,
        compile_templates=False,
        ema=False,
        use_kernels=False,
        skip_run_structure=True,
    )
    # Built without storage (meta device) and without Boltz's scipy initialisation, which takes
    # most of a minute at the released size: every weight the trunk uses comes from the file
    # (checked below). Should anything be left without storage (a buffer that is not saved, in
    # some other boltz version), it is built again the ordinary way.
    for fast in (True, False):
        try:
            model = _build(Boltz2, kwargs, fast)
        except (TypeError, KeyError, ValueError, AssertionError) as exc:
            raise WorkerError(
                f"cannot build Boltz2 from the hyper_parameters of {checkpoint}: {exc!r}"
            ) from None
        for name in UNUSED_MODULES:
            delattr(model, name)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False, assign=fast)
        except RuntimeError as exc:
            raise WorkerError(f"{checkpoint} does not fit the Boltz2 it describes: {exc}") from None
        missing = [k for k in missing if k.startswith(TRUNK_PREFIXES)]
        bad = [k for k in unexpected if k.startswith(TRUNK_PREFIXES) and not _is_v1_leftover(k)]
        if missing or bad:
            raise WorkerError(
                f"{checkpoint}: trunk weights missing {missing[:5]} (of {len(missing)}), "
                f"unexpected {bad[:5]} (of {len(bad)}); is it a Boltz-2 checkpoint?"
            )
        if not any(t.is_meta for t in (*model.parameters(), *model.buffers())):
            break
    model = model.float().to(device).eval()  # as Boltz loads into float32 parameters
    model.use_kernels = False
    info = {
        "c_s": int(hp["token_s"]),
        "c_z": int(hp["token_z"]),
        "boltz": found,
        "torch": torch.__version__,
        "device": device,
        "dropped_hyper_parameters": dropped,
        "unused_v1_weights": len([k for k in unexpected if _is_v1_leftover(k)]),
        "unused_weights": len([k for k in unexpected if not k.startswith(TRUNK_PREFIXES)]),
        "paired_msa_feature": msa.get("use_paired_feature", True),
        "fast_build": fast,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return model, info


def run_trunk(model: Any, feats: dict[str, Any], recycling_steps: int, precision: str = "32"):
    """s_inputs, s_trunk, z_trunk (batch of one) of Boltz2's trunk, templates off."""
    import contextlib

    import torch

    device = next(model.parameters()).device
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if precision == "bf16-mixed"
        else contextlib.nullcontext()
    )
    with torch.no_grad(), autocast:
        s_inputs = model.input_embedder(feats)
        s_init = model.s_init(s_inputs)
        z_init = model.z_init_1(s_inputs)[:, :, None] + model.z_init_2(s_inputs)[:, None, :]
        z_init = z_init + model.rel_pos(feats)
        z_init = z_init + model.token_bonds(feats["token_bonds"].float())
        if model.bond_type_feature:
            z_init = z_init + model.token_bonds_type(feats["type_bonds"].long())
        z_init = z_init + model.contact_conditioning(feats)
        s, z = torch.zeros_like(s_init), torch.zeros_like(z_init)
        mask = feats["token_pad_mask"].float()
        pair_mask = mask[:, :, None] * mask[:, None, :]
        for _ in range(recycling_steps + 1):
            s = s_init + model.s_recycle(model.s_norm(s))
            z = z_init + model.z_recycle(model.z_norm(z))
            z = z + model.msa_module(z, s_inputs, feats, use_kernels=False)
            s, z = model.pairformer_module(s, z, mask=mask, pair_mask=pair_mask, use_kernels=False)
    return s_inputs.float(), s.float(), z.float()


def load_features(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Packed features from a file → Boltz's tensors with a batch dimension, on ``device``."""
    import torch
    from safetensors.numpy import load_file

    from boltzkinema.trunk.boltz2_features import expand_features

    feats = expand_features(load_file(str(path)))
    return {k: torch.from_numpy(v)[None].to(device) for k, v in feats.items()}


def embed_file(model: Any, inp: str, out: str, recycling_steps: int, precision: str) -> float:
    """Embed one packed feature file into ``out``; seconds spent on the trunk."""
    from safetensors.torch import save_file

    device = str(next(model.parameters()).device)
    feats = load_features(inp, device)
    start = time.perf_counter()
    s_inputs, s_trunk, z_trunk = run_trunk(model, feats, recycling_steps, precision)
    seconds = time.perf_counter() - start
    tmp = f"{out}.tmp"
    save_file(
        {
            "s_inputs": s_inputs[0].cpu().contiguous(),
            "s_trunk": s_trunk[0].cpu().contiguous(),
            "z_trunk": z_trunk[0].cpu().contiguous(),
        },
        tmp,
    )
    os.replace(tmp, out)
    return seconds


def serve(args: argparse.Namespace, protocol) -> int:
    def say(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    start = time.perf_counter()
    try:
        import torch

        torch.manual_seed(args.seed)
        model, info = load_model(args.checkpoint, args.device)
    except WorkerError as exc:
        say({"ready": False, "error": str(exc)})
        return 1
    except ImportError as exc:
        say({"ready": False, "error": f"cannot import {exc.name or exc}: {exc}"})
        return 1
    except Exception as exc:
        traceback.print_exc()
        say({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    say({"ready": True, "load_seconds": time.perf_counter() - start, **info})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            seconds = embed_file(
                model, request["input"], request["output"], args.recycling_steps, args.precision
            )
            say({"ok": True, "seconds": seconds})
        except Exception as exc:
            traceback.print_exc()
            say({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="Boltz-2 checkpoint (boltz2_conf.ckpt)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--recycling-steps", type=int, default=3)
    p.add_argument("--precision", choices=PRECISIONS, default="32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", action="store_true", help="answer JSON-line requests on stdin")
    p.add_argument("--input", help="packed features (safetensors) of one system")
    p.add_argument("--output", help="where to write s_inputs, s_trunk, z_trunk")
    args = p.parse_args(argv)
    # Library output must not corrupt the protocol: keep the real stdout for it alone.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    if args.serve:
        return serve(args, protocol)
    if not (args.input and args.output):
        p.error("give --serve, or --input and --output")
    import torch

    torch.manual_seed(args.seed)
    model, info = load_model(args.checkpoint, args.device)
    seconds = embed_file(model, args.input, args.output, args.recycling_steps, args.precision)
    protocol.write(json.dumps({**info, "seconds": seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
