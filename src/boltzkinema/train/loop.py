"""The training loop: deterministic batches keyed by step, AdamW with warmup, clipping, a NaN
guard, checkpoints and exact resume, validation loss, and metrics to Parquet (and LanceDB)."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from boltzkinema import progress
from boltzkinema.data.collate import collate
from boltzkinema.data.dataset import SegmentConfig, TrajectoryDataset
from boltzkinema.data.masking import TaskConfig
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.model.architectures import (
    architecture_of,
    build_network,
    network_config,
    system_features,
)
from boltzkinema.model.layers.frames import is_added_parameter
from boltzkinema.settings import settings
from boltzkinema.train import checkpoint as ckpt
from boltzkinema.train.batches import StepBatches, accumulation_steps, batches, micro_slot
from boltzkinema.train.ema import WeightAverage
from boltzkinema.train.losses import LossWeights, total_loss
from boltzkinema.train.params import add_lora, describe, freeze
from boltzkinema.train.start import Start, load_start, resolve_start
from boltzkinema.train.state import TrainingState
from boltzkinema.trunk.cache import check_widths, entry_metadata
from boltzkinema.util import atomic_output, from_settings

log = logging.getLogger(__name__)


@settings("train")
class TrainConfig:
    """The ``train`` section of the config, with sizes for the example by default."""

    run: str
    seed: int
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    lr_schedule: str
    lr_final_fraction: float
    ema_decay: float
    grad_clip: float
    max_bad_steps: int
    checkpoint_every: int
    save: str
    val_every: int
    val_batches: int
    devices: int
    nodes: int
    global_batch: int | None
    rendezvous_port: int
    workers: int
    compile: bool
    bf16: bool
    lancedb: bool
    init_from: str | None
    freeze: list[str]
    lora_rank: int
    segments: dict[str, Any]
    tasks: dict[str, Any]
    losses: dict[str, Any]
    model: dict[str, Any]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return from_settings(cls, d, "train")

    def segment_config(self) -> SegmentConfig:
        cfg = SegmentConfig(seed=self.seed, tasks=TaskConfig(**self.tasks), **self.segments)
        return replace(cfg, dt_ns={k: tuple(v) for k, v in cfg.dt_ns.items()})


def trunk_dims(manifest: pd.DataFrame, results_root: Path) -> tuple[int, int]:
    """c_s and c_z of the cached trunk embeddings (all entries must agree)."""
    try:
        return check_widths([results_root / rel for rel in sorted(set(manifest["trunk_path"]))])
    except ValueError as exc:
        raise BoltzKinemaError(str(exc)) from exc


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds legacy users too)
    torch.manual_seed(seed)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def denoise_loss(
    model: torch.nn.Module,
    batch: dict[str, Any],
    weights: LossWeights,
    sigma_data: float,
    generator: torch.Generator,
    bf16: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Noise the target frames (σ = the batch's σ / σ_data times the network's σ_data), denoise
    (bf16 autocast on CUDA when asked), and score in float32. Float16 entries (the trunk
    embeddings, as cached: half the bytes through the data path) are widened here, on the
    batch's device."""
    batch = {
        k: v.float() if torch.is_tensor(v) and v.dtype == torch.float16 else v
        for k, v in batch.items()
    }
    sigma = batch["sigma_rel"] * sigma_data
    noise = torch.randn(batch["coords"].shape, generator=generator).to(sigma.device)
    x_noisy = batch["coords"] + noise * sigma[..., None, None]
    on_cuda = bf16 and sigma.device.type == "cuda"
    with torch.autocast(device_type=sigma.device.type, dtype=torch.bfloat16, enabled=on_cuda):
        pred = model(batch, x_noisy, sigma)
    return total_loss(pred.float(), batch, weights, sigma_data)


class Trainer:
    """One training run in ``run_dir``; resumes from its latest checkpoint when there is one."""

    def __init__(
        self,
        cfg: TrainConfig,
        manifest_path: str | Path,
        results_root: str | Path,
        run_dir: str | Path,
        config_hash: str = "",
    ):
        self.cfg = cfg
        self.results_root = Path(results_root)
        self.run_dir = Path(run_dir)
        self.config_hash = config_hash
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.device = torch.device(
            f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
        )
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        seed_everything(cfg.seed)
        manifest = pd.read_parquet(manifest_path)
        self.architecture = architecture_of(cfg.model)
        start = resolve_start(cfg.init_from, self.architecture)
        try:
            self.model_cfg = network_config(
                cfg.model,
                trunk_dims(manifest, self.results_root),
                start.boltz2,
                start.stored_config if self.architecture == "boltz2" else None,
            )
        except ckpt.CheckpointError as exc:
            raise ckpt.CheckpointError(f"train.init_from {start.source}: {exc}") from exc
        self.loss_weights = LossWeights(**cfg.losses)
        self.segments = cfg.segment_config()
        features = system_features(self.architecture)
        self.train_ds = TrajectoryDataset(
            manifest, self.results_root, self.segments, "train", features
        )
        self.accumulation = accumulation_steps(cfg.global_batch, cfg.batch_size, self.world)
        self.global_batch = cfg.batch_size * self.world * self.accumulation
        self.batches = StepBatches(
            self.train_ds, cfg.batch_size, self.world, self.rank, self.accumulation
        )
        log.info(
            "global batch %d = %d per device x %d processes x %d accumulation steps",
            self.global_batch,
            cfg.batch_size,
            self.world,
            self.accumulation,
        )
        try:
            self.val_ds: TrajectoryDataset | None = TrajectoryDataset(
                manifest,
                self.results_root,
                replace(self.segments, seed=cfg.seed + 1),
                "val",
                features,
            )
        except ValueError:
            self.val_ds = None
            log.warning("no validation systems: validation loss is not computed")
        self.model = self._build_model(start)
        self.ema = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        if start.boltz2 is not None:
            self._warn_unless_same_boltz2_trunk(manifest)
        del start  # a Boltz-2 checkpoint's contents are large
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.bad_in_row = 0
        self.best_val: float | None = None
        self.rows: list[dict[str, Any]] = []
        self._resume()
        self.tracked = len(self.rows)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        if cfg.compile:
            self.net = torch.compile(self.net)

    def _warn_unless_same_boltz2_trunk(self, manifest: pd.DataFrame) -> None:
        """Boltz-2 diffusion weights expect the trunk embeddings of their own checkpoint."""
        assert self.base is not None
        trunks = set()
        for rel in sorted(set(manifest["trunk_path"])):
            meta = entry_metadata(self.results_root / rel)
            params = json.loads(meta.get("params", "{}"))
            trunks.add((meta.get("backend"), params.get("checkpoint_sha256")))
        if trunks != {("boltz2", self.base["sha256"])}:
            log.warning(
                "the Boltz-2 diffusion weights of %s were trained on their own checkpoint's "
                "trunk, but these trunk embeddings come from %s; run trunk_cache with "
                "trunk.backend: boltz2 and trunk.checkpoint: the same file for a faithful start",
                self.base["path"],
                sorted(f"{b} (checkpoint sha256 {str(c)[:12]})" for b, c in trunks),
            )

    def _build_model(self, start: Start) -> torch.nn.Module:
        model = build_network(self.architecture, self.model_cfg.to_dict())
        self.base: dict[str, Any] | None = load_start(model, start, self.architecture)
        if self.cfg.lora_rank > 0:
            n = add_lora(model, self.cfg.lora_rank)
            log.info("LoRA rank %d on %d spatial attention projections", self.cfg.lora_rank, n)
            for name, p in model.named_parameters():
                p.requires_grad_("lora_" in name or is_added_parameter(name))
        freeze(model, self.cfg.freeze)
        log.info("%s", describe(model))
        return model.to(self.device)

    def _resume(self) -> None:
        found = ckpt.list_checkpoints(self.run_dir)
        if not found:
            return
        step, folder = found[-1]
        state = TrainingState.read(folder)
        if state.architecture != self.architecture:
            raise ckpt.CheckpointError(
                f"{folder} holds a {state.architecture} network but "
                f"train.model.architecture is {self.architecture}; pick a new train.run name "
                "(or delete the run folder) to train the other architecture"
            )
        if not ckpt.same_start(state.base, self.base):
            self._start_afresh(folder)
            return
        if self.config_hash and state.config_hash not in ("", self.config_hash):
            log.warning(
                "resuming %s written with another config (hash %s, now %s)",
                folder,
                state.config_hash,
                self.config_hash,
            )
        saved_batch = state.batch.get("global")
        if saved_batch not in (None, self.global_batch):
            log.warning(
                "resuming %s, trained with a global batch of %d, with %d: set "
                "train.global_batch: %d to keep the run's batch (and its data order)",
                folder,
                saved_batch,
                self.global_batch,
                saved_batch,
            )
        ckpt.load_weights(self.model, folder / "model.safetensors")
        if self.ema is not None:
            self._resume_average(folder)
        ckpt.load_optimizer(self.optimizer, folder, state.optimizer)
        ckpt.set_rng_state(state.rng)
        self.step = step
        self.best_val = state.best_val
        log_path = self.run_dir / "train_log.parquet"
        if log_path.exists():
            rows = pd.read_parquet(log_path)
            self.rows = rows[rows["step"] < step].to_dict("records")
        log.info("resumed from %s at step %d", folder, step)

    def _start_afresh(self, folder: Path) -> None:
        """The run's checkpoints started from other weights than ``init_from`` names now (the
        phase before was retrained): continuing them would ignore the new start, so they are
        set aside and the run trains again from the new one."""
        if self.world > 1:
            torch.distributed.barrier()  # every rank has read the old state before it moves
        if self.rank == 0:
            moved = ckpt.set_aside(self.run_dir)
            log.warning(
                "%s started from other weights than train.init_from %s names now; its "
                "checkpoints and training log are set aside in %s and the run starts afresh",
                folder,
                self.cfg.init_from,
                moved,
            )
        if self.world > 1:
            torch.distributed.barrier()

    def _resume_average(self, folder: Path) -> None:
        """Continue the weight average saved with ``folder``, or start it from the resumed
        weights when that checkpoint kept none (a run that turned ``ema_decay`` on later)."""
        assert self.ema is not None
        saved = folder / f"{ckpt.EMA_NAME}.safetensors"
        if not saved.exists():
            log.warning("%s holds no weight average; it starts from the resumed weights", folder)
            self.ema = WeightAverage(self.model, self.cfg.ema_decay)
            return
        try:
            self.ema.load(ckpt.strip_prefixes(ckpt.read_weights(saved)))
        except KeyError as exc:
            raise ckpt.CheckpointError(
                f"{saved}: {exc.args[0]}; it belongs to another model, pick a new train.run name"
            ) from exc

    def _generator(self, *key: int) -> torch.Generator:
        return torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.cfg.seed, *key]).generate_state(1)[0])
        )

    def train_step(self, step: int, micro: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One optimisation step over its micro-batches (made here when not given): gradients
        of each micro-batch's mean loss averaged (accumulated locally, all-reduced once), or a
        logged skip when the loss or gradients are not finite."""
        t0 = time.perf_counter()
        micro = self.batches[step] if micro is None else micro
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        loss_sum, sums, tasks, skipped = 0.0, {}, [], False
        for a, batch in enumerate(micro):
            batch = _to(batch, self.device)
            last = a == len(micro) - 1
            local = self.net.no_sync() if self.world > 1 and not last else nullcontext()
            with local:
                loss, terms = denoise_loss(
                    self.net,
                    batch,
                    self.loss_weights,
                    self.model_cfg.sigma_data,
                    self._generator(step, micro_slot(a, self.world, self.rank)),
                    self.cfg.bf16,
                )
                loss_sum += float(loss.detach()) / len(micro)
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value / len(micro)
                tasks += batch["task"]
                if not torch.isfinite(loss):
                    skipped = True
                    break
                (loss / len(micro)).backward()
        grad_norm = float("nan")
        if not skipped:
            params = [p for p in self.model.parameters() if p.requires_grad]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
            skipped = not np.isfinite(grad_norm)
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_in_row += 1
            log.warning(
                "step %d: non-finite loss or gradient, step skipped (%d in a row)",
                step,
                self.bad_in_row,
            )
            if self.bad_in_row >= self.cfg.max_bad_steps:
                raise BoltzKinemaError(
                    f"{self.bad_in_row} non-finite steps in a row; lower the "
                    "learning rate or check the data"
                )
        else:
            self.bad_in_row = 0
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model, step)
        return {
            "step": step,
            "loss": loss_sum,
            **sums,
            "lr": self.optimizer.param_groups[0]["lr"],
            "grad_norm": grad_norm,
            "skipped": skipped,
            "tasks": ",".join(tasks),
            "seconds": time.perf_counter() - t0,
            "val_loss": float("nan"),
        }

    def learning_rate(self, step: int) -> float:
        """Linear warm-up to ``lr`` over ``warmup_steps``, then constant, or (``cosine``) a
        half cosine down to ``lr_final_fraction · lr`` at the last step."""
        warm = min(1.0, (step + 1) / max(1, self.cfg.warmup_steps))
        if self.cfg.lr_schedule == "constant" or step < self.cfg.warmup_steps:
            return self.cfg.lr * warm
        span = max(1, self.cfg.steps - 1 - self.cfg.warmup_steps)
        progress = min(1.0, (step - self.cfg.warmup_steps) / span)
        final = self.cfg.lr_final_fraction
        return self.cfg.lr * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def _shrink_crop(self) -> None:
        """After CUDA out-of-memory: halve the crop and retry the same step."""
        self.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        seg = self.train_ds.cfg
        if seg.max_atoms <= 32:
            raise BoltzKinemaError(
                "CUDA out of memory even with a 32-atom crop; use a GPU with "
                "more memory or fewer frames per segment"
            )
        self.train_ds.cfg = replace(
            seg, max_atoms=max(32, seg.max_atoms // 2), max_tokens=max(8, seg.max_tokens // 2)
        )
        log.warning(
            "CUDA out of memory at step %d: retrying with a smaller crop (max_atoms %d, "
            "max_tokens %d)",
            self.step,
            self.train_ds.cfg.max_atoms,
            self.train_ds.cfg.max_tokens,
        )

    def validate(self) -> float | None:
        """Mean denoising loss over fixed validation batches (same items and noise every time),
        of the averaged weights where there are any (what sampling and ``best`` use)."""
        if self.val_ds is None or self.cfg.val_batches <= 0:
            return None
        self.net.eval()
        losses = []
        averaged = self.ema.swapped_in(self.model) if self.ema is not None else nullcontext()
        with torch.no_grad(), averaged:
            for b in range(self.cfg.val_batches):
                items = [
                    self.val_ds.item(0, b * self.cfg.batch_size + i)
                    for i in range(self.cfg.batch_size)
                ]
                batch = _to(collate(items), self.device)
                loss, _ = denoise_loss(
                    self.model,
                    batch,
                    self.loss_weights,
                    self.model_cfg.sigma_data,
                    self._generator(10**9, b),
                    self.cfg.bf16,
                )
                losses.append(float(loss))
        return float(np.mean(losses))

    def run(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``cfg.steps`` (or stop early at ``stop_at``, as an interruption would)."""
        end = min(self.cfg.steps, stop_at) if stop_at is not None else self.cfg.steps
        title = f"train {self.cfg.run}"
        pin = self.device.type == "cuda"
        with progress.bar(title, self.cfg.steps, "step", self.step, self.rank == 0) as shown:
            while self.step < end:
                for step, batch in batches(self.batches, self.step, end, self.cfg.workers, pin):
                    try:
                        row = self.train_step(step, batch)
                    except torch.cuda.OutOfMemoryError:
                        self._shrink_crop()  # then new batches (and workers) from this step
                        break
                    self._after_step(row, end)
                    progress.postfix(shown, loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
                    shown.update(1)
        return {"step": self.step, "best_val": self.best_val}

    def _after_step(self, row: dict[str, Any], end: int) -> None:
        """Count the step, validate, log and checkpoint when due."""
        self.step += 1
        done = self.step == end
        if self.cfg.val_every and (self.step % self.cfg.val_every == 0 or done):
            val = self.validate()
            if val is not None:
                row["val_loss"] = val
                if self.best_val is None or val < self.best_val:
                    self.best_val = val
        self.rows.append(row)
        log.debug(
            "step %d/%d loss %.4f%s",
            self.step,
            self.cfg.steps,
            row["loss"],
            f" val {row['val_loss']:.4f}" if np.isfinite(row["val_loss"]) else "",
        )
        if self.rank == 0 and (self.step % self.cfg.checkpoint_every == 0 or done):
            self.save(row)

    def coverage(self) -> dict[str, Any]:
        """What training draws (``state.json`` → ``coverage``), so that sampling can refuse
        windows, history lengths, spans or tasks the network never saw (``sample.coverage``)."""
        tasks = self.segments.tasks
        return {
            "n_frames": self.segments.n_frames,
            "max_history": min(tasks.max_history, max(1, self.segments.n_frames - 1)),
            "dt_ns": list(self.train_ds.dt_range()),
            "tasks": dict(tasks.probabilities),
            "shared_sigma": tasks.shared_sigma,
            "pose": self.segments.pose,
        }

    def save(self, row: dict[str, Any]) -> None:
        val = row["val_loss"] if np.isfinite(row["val_loss"]) else None
        state = {
            "config_hash": self.config_hash,
            "val_loss": val,
            "best_val": self.best_val,
            "data_position": self.step * self.global_batch,
            "batch": {
                "global": self.global_batch,
                "per_device": self.cfg.batch_size,
                "processes": self.world,
                "nodes": self.world // int(os.environ.get("LOCAL_WORLD_SIZE", self.world)),
                "accumulation": self.accumulation,
            },
            "architecture": self.architecture,
            "model_config": self.model_cfg.to_dict(),
            "lora_rank": self.cfg.lora_rank,
            "base": self.base,
            "coverage": self.coverage(),
        }
        folder = ckpt.save_checkpoint(
            self.run_dir,
            self.step,
            self.model,
            self.optimizer,
            state,
            # Frozen weights are left out only where the base gives them back.
            self.cfg.save == "trainable" and self.base is not None,
            self.ema.averaged_state(self.model) if self.ema is not None else None,
        )
        with atomic_output(self.run_dir / "train_log.parquet") as tmp:
            pd.DataFrame(self.rows).to_parquet(tmp, index=False)
        if self.cfg.lancedb:
            from boltzkinema.track import log_rows

            log_rows(
                self.results_root / "lancedb",
                "train_metrics",
                [{"run": self.cfg.run, **r} for r in self.rows[self.tracked :]],
                key=["run", "step"],
            )
            self.tracked = len(self.rows)
        log.info("checkpoint %s", folder)
