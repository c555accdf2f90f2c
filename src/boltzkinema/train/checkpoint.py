"""Checkpoints you can trust: safetensors weights and optimizer state, RNG states and the data
position in JSON, written to a temporary folder and renamed; loading that names every missing,
unexpected or misshapen key; resolution by policy that never returns a placeholder."""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from boltzkinema.errors import CheckpointError
from boltzkinema.model.boltz2_weights import load_boltz2_weights
from boltzkinema.train.resolved import ResolvedCheckpoint
from boltzkinema.train.state import TrainingState
from boltzkinema.util import atomic_output

log = logging.getLogger(__name__)
STEP_DIR = re.compile(r"^step_(\d+)$")
PREFIXES = ("_orig_mod.", "module.")
EMA_NAME = "ema"  # ema.safetensors: the weight average, which sampling prefers


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON-serialisable values."""
    py = random.getstate()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": np.random.get_state(legacy=False),  # noqa: NPY002 (global state is what we save)
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(state["numpy"])  # noqa: NPY002
    raw = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (safetensors) and the rest (JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU tensors in which no two share memory (safetensors refuses tied names, e.g. a layer
    registered twice): a later name of the same storage gets its own copy."""
    seen: set[int] = set()
    out = {}
    for key, value in tensors.items():
        value = value.detach().cpu().contiguous()
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    return out


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    trainable_only: bool,
    averaged: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``step_{N}/`` atomically: model.safetensors, optimizer.safetensors, state.json,
    and ema.safetensors when ``averaged`` (the weight average's state dict) is given."""
    target = step_dir(run_dir, step)
    names = None
    if trainable_only:  # every name of a trainable tensor (a layer may be registered twice)
        names = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    files = {}
    for filename, state_dict in (("model", model.state_dict()), (EMA_NAME, averaged)):
        if state_dict is not None:
            weights = _unshared(state_dict)
            if names is not None:
                weights = {k: v for k, v in weights.items() if k in names}
            files[filename] = weights
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    files["optimizer"] = opt_tensors
    needed = sum(t.numel() * t.element_size() for w in files.values() for t in w.values())
    with atomic_output(target, needed) as tmp:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for filename, weights in files.items():
            save_file(weights, str(tmp / f"{filename}.safetensors"), metadata={"step": str(step)})
        TrainingState(
            **state, step=step, optimizer=opt_meta, rng=rng_state(), trainable_only=trainable_only
        ).write(tmp)
        if target.exists():  # a rewrite of the same step: os.replace needs the name free
            shutil.rmtree(target)
    return target


def load_optimizer(optimizer: torch.optim.Optimizer, ckpt: Path, meta: dict[str, Any]) -> None:
    tensors = load_file(str(ckpt / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, scalars in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from safetensors, or from .bin/.pt only through ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such weights file; check the checkpoint path")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(
                f"{path}: corrupt safetensors file ({exc}); re-copy it, or resolve another "
                "checkpoint (checkpoint.policy latest/best)"
            ) from exc
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # any refusal is reported the same way
            raise CheckpointError(
                f"{path}: refused to load ({type(exc).__name__}: {str(exc)[:200]}); only plain "
                "tensor state dicts are accepted, convert it to safetensors"
            ) from exc
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise CheckpointError(f"{path}: not a state dict")
        return {k: v for k, v in obj.items() if torch.is_tensor(v)}
    raise CheckpointError(f"{path}: unknown weights format; use .safetensors")


def strip_prefixes(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``_orig_mod.`` (torch.compile) and ``module.`` (DDP) prefixes."""
    out = {}
    for key, value in weights.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def load_weights(model: torch.nn.Module, path: str | Path, strict: bool = False) -> dict[str, Any]:
    """Load what fits, report "Loaded X/Y keys" with missing and unexpected keys named.

    A key present in both with another shape is an error, never silently skipped.
    """
    weights = strip_prefixes(read_weights(path))
    own = model.state_dict()
    bad = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in weights.items()
        if k in own and own[k].shape != v.shape
    ]
    if bad:
        raise CheckpointError(
            f"{path}: shape mismatch for {len(bad)} keys: {bad[:5]}; the "
            "checkpoint was made for another model size"
        )
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if strict and (missing or unexpected):
        raise CheckpointError(f"{path}: missing {missing[:10]}, unexpected {unexpected[:10]}")
    model.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)
    report = {
        "loaded": len(set(weights) & set(own)),
        "total": len(own),
        "missing": missing,
        "unexpected": unexpected,
    }
    log.info(
        "Loaded %d/%d keys from %s%s%s",
        report["loaded"],
        report["total"],
        path,
        f"; missing: {missing[:20]}" if missing else "",
        f"; unexpected: {unexpected[:20]}" if unexpected else "",
    )
    return report


def base_record(path: Path, boltz2: bool, parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run started from (``train.init_from``), kept in ``state.json``: a checkpoint of
    trainable parameters only needs it back for the frozen ones. ``parent`` is the base of
    the run ``path`` belongs to, when that run saved trainable parameters only (a chain)."""
    return {
        "path": str(path.resolve()),
        "sha256": sha256(path),
        "format": "boltz2" if boltz2 else "weights",
        "base": parent,
    }


def load_base(model: torch.nn.Module, base: dict[str, Any]) -> set[str]:
    """Load the weights a run started from (its own base first), refusing a file that is gone
    or has changed; return the names filled."""
    filled = load_base(model, base["base"]) if base.get("base") else set()
    path = Path(base["path"])
    if not path.exists():
        raise CheckpointError(
            f"{path}: the weights this run started from (train.init_from) are gone, and its "
            "checkpoints hold the trainable parameters only; put the file back, or retrain "
            "with train.save: all"
        )
    if sha256(path) != base["sha256"]:
        raise CheckpointError(
            f"{path} has changed since the run started from it (sha256 {base['sha256'][:12]}...); "
            "restore that file, or retrain with train.save: all"
        )
    if base["format"] == "boltz2":
        return filled | set(load_boltz2_weights(model, path).mapped)
    return filled | set(model.state_dict()) - set(load_weights(model, path)["missing"])


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint of a run, by step."""
    root = run_dir / "checkpoints"
    found = []
    if root.exists():
        for child in root.iterdir():
            m = STEP_DIR.match(child.name)
            if m and (child / "model.safetensors").exists() and (child / "state.json").exists():
                found.append((int(m.group(1)), child))
    return sorted(found)


def same_start(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two base records name the same starting weights (by content, not path)."""
    return (a or {}).get("sha256") == (b or {}).get("sha256")


def set_aside(run_dir: Path) -> Path:
    """Move a run's checkpoints and training log into ``superseded/NN/`` (never deleted), so
    that the run can start afresh; return that folder."""
    root = run_dir / "superseded"
    folder = root / f"{len(list(root.glob('[0-9]*'))) + 1:02d}"  # a missing root globs nothing
    folder.mkdir(parents=True)
    for name in ("checkpoints", "train_log.parquet"):
        if (run_dir / name).exists():
            (run_dir / name).rename(folder / name)
    return folder


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_checkpoint(
    run_dir: str | Path, policy: str, explicit: str | None = None
) -> ResolvedCheckpoint:
    """The checkpoint a policy picks: ``latest``, ``best`` (lowest validation loss) or
    ``explicit``; anything missing or a placeholder is an error listing what exists."""
    run_dir = Path(run_dir)
    found = list_checkpoints(run_dir)
    existing = [str(p) for _, p in found] or ["(none)"]
    if policy == "explicit":
        if not explicit or "XXX" in explicit.upper() or not Path(explicit).exists():
            raise CheckpointError(
                f"explicit checkpoint {explicit!r} does not exist "
                f"(placeholder?); set checkpoint.path to one of the checkpoints of {run_dir}: "
                f"{existing}"
            )
        path = Path(explicit)
        folder = path if path.is_dir() else path.parent
        m = STEP_DIR.match(folder.name)
        step = int(m.group(1)) if m else -1
        weights = sampling_weights(path) if path.is_dir() else path
    else:
        if not found:
            raise CheckpointError(f"{run_dir} has no complete checkpoint; train first")
        if policy == "latest":
            step, folder = found[-1]
        elif policy == "best":
            scored = []
            for s, p in found:
                val = TrainingState.read(p).val_loss
                if val is not None:
                    scored.append((val, s, p))
            if not scored:
                raise CheckpointError(
                    f"no checkpoint of {run_dir} has a validation loss; use "
                    f"policy 'latest' (checkpoints: {existing})"
                )
            _, step, folder = min(scored)
        else:
            raise CheckpointError(f"unknown checkpoint policy {policy!r}: latest, best, explicit")
        weights = sampling_weights(folder)
    if not weights.exists():
        raise CheckpointError(f"{weights} does not exist; checkpoints of {run_dir}: {existing}")
    return ResolvedCheckpoint(
        path=str(folder),
        weights=str(weights),
        averaged=weights.name == f"{EMA_NAME}.safetensors",
        step=step,
        policy=policy,
        sha256=sha256(weights),
    )


def sampling_weights(folder: Path) -> Path:
    """The weights to sample from in a checkpoint folder: the weight average where the run
    kept one (``train.ema_decay``), else the raw weights."""
    averaged = folder / f"{EMA_NAME}.safetensors"
    return averaged if averaged.exists() else folder / "model.safetensors"
