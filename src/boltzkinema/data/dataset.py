"""Training segments: a window of frames from one system, cropped, centred, rotated, noised.

Every item is a pure function of (seed, epoch, index): which system (by dataset weight), the task
and window length, the frame spacing (log-uniform in the dataset's Δt range), the start frame
(anywhere in the valid range), the crop, the rotations and the noise levels. So items do not
depend on worker counts, and a resumed run sees exactly the data an uninterrupted one would.
Frames are read from the shards on demand; only open file handles are kept.

No input carries the target. The reference-position atom feature is the system's reference
structure (the processed store's ``reference_coords``: the topology's structure, else the first
frame), the same for every window of a system, centred on itself and turned by a rotation of its
own, never the targets'. Where that reference is a frame of the trajectory (Kabsch RMSD to frame 0
under :data:`SAME_STRUCTURE_RMSD`), windows start after frame 0, so the reference is never one of
a window's targets. Sampling builds the same feature (``sample.modes.load_system``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boltzkinema.data.align import kabsch_rotations
from boltzkinema.data.features import atom_features
from boltzkinema.data.masking import TaskConfig, draw_task, sample_relative_sigmas, window_length
from boltzkinema.data.pose import POSES, Pose
from boltzkinema.data.store import ProcessedSystem, ShardReader
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.io.chemistry import MolType
from boltzkinema.io.tensor_map import map_tensors
from boltzkinema.settings import settings

# Extra features of a whole system (given its trunk entry): ``atom.*`` arrays with one row per
# atom and ``token.*`` arrays with one row per token; items crop them like everything else.
SystemFeatures = Callable[[ProcessedSystem, Path], dict[str, np.ndarray]]
# A stored reference within this RMSD (Å) of frame 0 is frame 0 (the store's fallback).
SAME_STRUCTURE_RMSD = 0.01


@settings("train.segments", seed="train.seed", tasks=TaskConfig)
class SegmentConfig:
    """How training windows are drawn."""

    n_frames: int
    dataset_weights: dict[str, float]
    dt_ns: dict[str, tuple[float, float]]
    max_atoms: int
    max_tokens: int
    seed: int
    tasks: TaskConfig
    # How each window is turned (data/pose.py): random, reference or backbone.
    pose: str

    def __post_init__(self) -> None:
        if self.pose not in POSES:
            raise ValueError(f"segments.pose {self.pose!r}: use one of {POSES}")


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix uniform on SO(3) (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def reference_structure(system: ProcessedSystem) -> np.ndarray:
    """The system's reference structure (M, 3) in Å: stored ``reference_coords``, else frame 0
    of ``system`` (the store writes the processed first frame when the topology has none)."""
    ref = system.reference_coords if system.reference_coords is not None else system.coords[0]
    return np.asarray(ref, dtype=np.float64)


def reference_positions(ref: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The reference-position feature: ``ref`` (M, 3) centred on itself and turned by its own
    ``rotation`` (independent of the targets' frame)."""
    return (ref - ref.mean(axis=0)) @ rotation


def rmsd_after_superposition(a: np.ndarray, b: np.ndarray) -> float:
    """Kabsch RMSD (Å) between two structures of the same atoms."""
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    rot = kabsch_rotations(a[None], b)[0]
    return float(np.sqrt(((a @ rot - b) ** 2).sum(axis=1).mean()))


def reference_system(system: ProcessedSystem, ref: np.ndarray) -> ProcessedSystem:
    """``system`` with its reference structure as the one frame: what per-system features are
    built from, in training and in sampling alike (never a window's frames)."""
    return replace(system, coords=ref[None].astype(np.float32), times_ns=np.zeros(1))


def crop_tokens(
    token_index: np.ndarray,
    ref: np.ndarray,
    max_tokens: int,
    max_atoms: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Atom indices of a spatial crop: the tokens nearest a random token, within both budgets."""
    n_tok = int(token_index.max()) + 1
    if n_tok <= max_tokens and len(token_index) <= max_atoms:
        return np.arange(len(token_index))
    counts = np.bincount(token_index, minlength=n_tok)
    centres = np.zeros((n_tok, 3))
    np.add.at(centres, token_index, ref)
    centres /= counts[:, None]
    anchor = centres[rng.integers(n_tok)]
    order = np.argsort(np.linalg.norm(centres - anchor, axis=1), kind="stable")
    cum = np.cumsum(counts[order])
    keep = order[: max(1, min(max_tokens, int(np.searchsorted(cum, max_atoms, side="right"))))]
    return np.flatnonzero(np.isin(token_index, keep))


def crop_features(
    features: dict[str, np.ndarray], atoms: np.ndarray, tokens: np.ndarray
) -> dict[str, np.ndarray]:
    """The rows of ``atom.*`` / ``token.*`` arrays that a crop keeps."""
    return {k: v[atoms] if k.startswith("atom.") else v[tokens] for k, v in features.items()}


class TrajectoryDataset:
    """Segments drawn from the manifest rows of one split.

    ``system_features``, when given, adds per-system features to every item (computed once per
    system and kept for the ``cached_systems`` most recently drawn), e.g. Boltz-2's atom features
    for ``model.architecture: boltz2``. They must be a pure function of the system, so that a
    recomputed entry equals the evicted one.
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        results_root: str | Path,
        cfg: SegmentConfig,
        split: str | None = "train",
        system_features: SystemFeatures | None = None,
        cached_systems: int = 4096,
    ):
        rows = manifest if split is None else manifest[manifest["split"] == split]
        if cfg.dataset_weights:
            rows = rows[rows["dataset"].isin([d for d, w in cfg.dataset_weights.items() if w > 0])]
        if rows.empty:
            raise ValueError(
                f"no systems for split {split!r} with dataset weights "
                f"{cfg.dataset_weights or 'uniform'}; check the manifest and config"
            )
        self.rows = rows.sort_values("system_id").reset_index(drop=True)
        self.root = Path(results_root)
        self.cfg = cfg
        if cfg.dataset_weights:
            per_ds = self.rows.groupby("dataset")["system_id"].transform("count")
            w = self.rows["dataset"].map(cfg.dataset_weights).to_numpy(float) / per_ds.to_numpy()
        else:
            w = np.ones(len(self.rows))
        self.p = w / w.sum()
        self._readers: dict[str, ShardReader] = {}
        self.system_features = system_features
        self._features: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self.cached_systems = cached_systems
        self._reference_is_frame0: dict[str, bool] = {}
        self._frame_atoms: dict[str, np.ndarray] = {}
        self._topologies: OrderedDict[str, ProcessedSystem] = OrderedDict()

    def __len__(self) -> int:
        return len(self.rows)

    def _reader(self, shard: str) -> ShardReader:
        if shard not in self._readers:
            self._readers[shard] = ShardReader(self.root / shard)
        return self._readers[shard]

    def dt_range(self) -> tuple[float, float]:
        """The frame spacings (ns) training windows can have, over all drawn systems: each
        dataset's ``dt_ns`` range, else its systems' own frame spacing."""
        lo, hi = np.inf, 0.0
        for dataset, frame_dt in zip(self.rows["dataset"], self.rows["frame_dt_ns"], strict=True):
            a, b = self.cfg.dt_ns.get(dataset, (float(frame_dt), float(frame_dt)))
            lo, hi = min(lo, a, float(frame_dt)), max(hi, b, float(frame_dt))
        return float(lo), float(hi)

    def _topology(self, reader: ShardReader, sid: str) -> ProcessedSystem:
        """The system with its first frame only (topology, reference), kept for the
        ``cached_systems`` most recently drawn: reading it is most of an item's cost."""
        if sid not in self._topologies:
            self._topologies[sid] = reader.load(sid, frames=[0])
            while len(self._topologies) > self.cached_systems:
                self._topologies.popitem(last=False)
        self._topologies.move_to_end(sid)
        return self._topologies[sid]

    def _pose(self, sid: str, system: ProcessedSystem, ref: np.ndarray, atoms: np.ndarray) -> Pose:
        """The pose of a crop: the whole system's frame atoms (found once per system, as
        sampling finds them) where the crop keeps them, else the crop's own."""
        if sid not in self._frame_atoms:
            whole = Pose.of(self.cfg.pose, system.atom_names, system.token_index, ref)
            self._frame_atoms[sid] = whole.frame
        frame = self._frame_atoms[sid]
        inside = np.searchsorted(atoms, frame)
        if len(frame) and np.isin(frame, atoms).all():
            return Pose(self.cfg.pose, ref[atoms], inside)
        return Pose.of(
            self.cfg.pose, system.atom_names[atoms], system.token_index[atoms], ref[atoms]
        )

    def _starts_after_frame0(self, reader: ShardReader, sid: str, ref: np.ndarray) -> bool:
        """Whether the system's reference is its frame 0 (then windows must not hold frame 0)."""
        if sid not in self._reference_is_frame0:
            first = reader.frames(sid, [0])[0].astype(np.float64)
            self._reference_is_frame0[sid] = (
                rmsd_after_superposition(ref, first) < SAME_STRUCTURE_RMSD
            )
        return self._reference_is_frame0[sid]

    def _frames(
        self, n_total: int, t: int, frame_dt: float, dataset: str, rng: np.random.Generator
    ) -> np.ndarray:
        t = min(t, n_total)
        lo, hi = self.cfg.dt_ns.get(dataset, (frame_dt, frame_dt))
        dt = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else lo
        stride = max(1, round(dt / frame_dt))
        if t > 1:
            stride = min(stride, max(1, (n_total - 1) // (t - 1)))
        start = int(rng.integers(0, n_total - (t - 1) * stride))
        return start + stride * np.arange(t)

    def item(self, epoch: int, index: int) -> dict[str, Any]:
        """The segment for (epoch, index): same inputs, same segment, in any process."""
        rng = np.random.default_rng([self.cfg.seed, epoch, index])
        row = self.rows.iloc[int(rng.choice(len(self.rows), p=self.p))]
        reader = self._reader(row["shard"])
        sid = row["system_id"]
        n_total = reader.n_frames(sid)
        task = draw_task(self.cfg.tasks, rng)
        length = window_length(task, self.cfg.n_frames, rng)
        system = self._topology(reader, sid)
        ref = reference_structure(system)
        first = int(n_total > 1 and self._starts_after_frame0(reader, sid, ref))
        frames = first + self._frames(
            n_total - first, length, float(row["frame_dt_ns"]), row["dataset"], rng
        )
        coords = reader.frames(sid, frames).astype(np.float64)
        atoms = crop_tokens(system.token_index, ref, self.cfg.max_tokens, self.cfg.max_atoms, rng)
        tokens, atom_to_token = np.unique(system.token_index[atoms], return_inverse=True)
        if self.cfg.pose != "random":
            pose = self._pose(sid, system, ref, atoms)
            centre, rot = (a[0] for a in pose.of_frames(coords[:1, atoms]))
        else:
            centre, rot = coords[0, atoms].mean(axis=0), random_rotation(rng)
        coords = (coords[:, atoms] - centre) @ rot
        # The reference turns by a rotation of its own (own stream), never the targets'.
        ref_rot = random_rotation(np.random.default_rng([self.cfg.seed, epoch, index, 1]))
        ref = reference_positions(ref[atoms], ref_rot)
        sigma, task = sample_relative_sigmas(len(frames), self.cfg.tasks, rng, task)
        if self.cfg.tasks.given_noise > 0:
            # Generated history is never exact MD: given frames get a little noise (own stream)
            # so that the network learns to continue from imperfect frames.
            given_rng = np.random.default_rng([self.cfg.seed, epoch, index, 2])
            noise = given_rng.normal(scale=self.cfg.tasks.given_noise, size=coords.shape)
            coords = coords + noise * (sigma == 0)[:, None, None]
        remap = np.full(system.n_atoms, -1)
        remap[atoms] = np.arange(len(atoms))
        bonds = remap[system.bonds]
        keep = (bonds >= 0).all(axis=1)
        s_inputs, s_trunk, z_trunk = self._trunk(row["trunk_path"], tokens)
        mol_type = system.mol_type[atoms]
        extra = {}
        if self.system_features is not None:
            if sid not in self._features:
                try:
                    features = self.system_features(
                        reference_system(system, reference_structure(system)),
                        self.root / row["trunk_path"],
                    )
                except BoltzKinemaError as exc:
                    raise BoltzKinemaError(
                        f"{sid} ({row['shard']}): the model's per-system features cannot be "
                        f"built: {exc}. A trunk_cache run with trunk.backend: boltz2 "
                        "quarantines such systems before training"
                    ) from exc
                self._features[sid] = features
                while len(self._features) > self.cached_systems:
                    self._features.popitem(last=False)
            self._features.move_to_end(sid)
            extra = crop_features(self._features[sid], atoms, tokens)
        return {
            "system_id": sid,
            "task": task,
            "frames": frames.astype(np.int64),
            "coords": coords.astype(np.float32),
            "times": ((frames - frames[0]) * float(row["frame_dt_ns"])).astype(np.float32),
            "sigma_rel": sigma.astype(np.float32),  # σ / σ_data; 0 for given frames
            "atom_features": atom_features(
                system.elements[atoms], mol_type, system.atom_names[atoms], ref
            ),
            "atom_to_token": atom_to_token.astype(np.int64),
            "mol_type": mol_type.astype(np.int64),
            "is_ligand": mol_type == int(MolType.LIGAND),
            "bonds": bonds[keep].astype(np.int64),
            "s_inputs": s_inputs,
            "s_trunk": s_trunk,
            "z_trunk": z_trunk,
            **extra,
        }

    def _trunk(self, rel: str, tokens: np.ndarray) -> tuple[np.ndarray, ...]:
        """Rows (and, of the pair embedding, rows and columns) of the cached trunk embedding for
        the kept tokens, gathered straight from a memory map of the file; float16 as stored, so
        that gathering, collating and sending the pair embedding moves half the bytes (training
        widens it on the device)."""
        cached = map_tensors(self.root / rel)
        z = cached["z_trunk"][tokens[:, None], tokens[None, :]]
        return cached["s_inputs"][tokens], cached["s_trunk"][tokens], z

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
