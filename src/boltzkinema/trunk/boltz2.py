"""The ``boltz2`` trunk backend: Boltz-2's own trunk, from a checkpoint the user provides.

Features are built here, in the core environment, by :mod:`boltzkinema.trunk.boltz2_features`
(numpy and RDKit; the same tensors Boltz-2's featuriser makes, token for token with ours); the
network runs in a separate Python environment that has ``boltz==2.2.1`` (which pins numpy<2), in
one long-lived worker process (:mod:`boltzkinema.trunk.boltz2_worker`) per backend: the model is
loaded once and every system of a shard goes through the same process, by files in a private
temporary folder. The worker starts when the backend is made, so a missing checkpoint, a missing
or broken Boltz environment, or weights that do not fit fail before any system is embedded.

Settings (all but ``python`` and ``device`` are part of the cache key, with the checkpoint's
SHA-256 rather than its path):

* ``checkpoint``: the Boltz-2 Lightning checkpoint (``boltz2_conf.ckpt``; never downloaded);
* ``python``: the Boltz environment's interpreter; default ``$BOLTZ_PYTHON``, else
  ``.venv-boltz/bin/python`` in the working directory or the repository (``make boltz-env``);
* ``recycling_steps`` (3, Boltz's default), ``msa`` (only ``single_sequence``), ``method``
  (Boltz's method conditioning; its default "x-ray diffraction"), ``precision`` ("32", or
  "bf16-mixed" as ``boltz predict`` runs on GPUs), ``device`` ("cpu", "cuda", ...), ``seed``
  (the ligand conformers' ETKDG seed).

Determinism: the features are deterministic (Boltz's random rotation and shift of the residue
reference conformers is left out; see ``boltz2_features``), and the trunk in eval mode has no
randomness; CPU and GPU results differ by floating-point rounding only, so ``device`` is not part
of the cache key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import weakref
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from boltzkinema.data.store import ProcessedSystem
from boltzkinema.errors import BoltzKinemaError, ConfigError
from boltzkinema.settings import default
from boltzkinema.trunk.backend import TrunkEmbedding, register
from boltzkinema.trunk.boltz2_features import (
    LIGAND_CONFORMER,
    METHOD_TYPE_IDS,
    REF_POS_AUGMENTATION,
    build_features,
)

log = logging.getLogger(__name__)

BOLTZ_ENV_RECIPE = (
    "create it with `make boltz-env` (python3.11 -m venv .venv-boltz && "
    ".venv-boltz/bin/pip install torch==2.13.0 && .venv-boltz/bin/pip install boltz==2.2.1) "
    "or `conda env create -f envs/boltz.yaml`, then set trunk.python (or BOLTZ_PYTHON) to its "
    "python if it is not ./.venv-boltz"
)
MSA_MODES = ("single_sequence",)
PRECISIONS = ("32", "bf16-mixed")
_SRC = Path(__file__).resolve().parents[2]  # the folder that holds the boltzkinema package


class Boltz2WorkerError(BoltzKinemaError):
    """The Boltz environment is missing, broken, or refused the checkpoint."""


def default_python() -> str | None:
    """``$BOLTZ_PYTHON``, else ``.venv-boltz/bin/python`` here or in the repository."""
    if os.environ.get("BOLTZ_PYTHON"):
        return os.environ["BOLTZ_PYTHON"]
    for root in (Path.cwd(), _SRC.parent):
        candidate = root / ".venv-boltz" / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return None


@cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) within a process."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@register("boltz2")
class Boltz2Trunk:
    """Embeds systems with Boltz-2's trunk in a worker process; see the module docstring."""

    name = "boltz2"
    version = "1"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        python: str | None = None,
        recycling_steps: int = default("trunk.recycling_steps"),
        msa: str = default("trunk.msa"),
        method: str = default("trunk.method"),
        device: str = default("trunk.device"),
        precision: str = default("trunk.precision"),
        seed: int = default("trunk.seed"),
        c_s: int | None = None,
        c_z: int | None = None,
    ):
        if not checkpoint:
            raise ConfigError(
                "trunk backend boltz2 needs trunk.checkpoint: the path of a Boltz-2 checkpoint "
                "(boltz2_conf.ckpt, which `boltz predict` caches in ~/.boltz; published as "
                "boltz-community/boltz-2 on Hugging Face). Nothing is downloaded at run time."
            )
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise ConfigError(
                f"Boltz-2 checkpoint not found at {self.checkpoint}. Put boltz2_conf.ckpt there "
                "(the file `boltz predict` caches in ~/.boltz; published as "
                "boltz-community/boltz-2 on Hugging Face) or set trunk.checkpoint to where it "
                "is. Nothing is downloaded at run time."
            )
        if msa not in MSA_MODES:
            raise ConfigError(f"trunk.msa {msa!r} is not supported; one of {list(MSA_MODES)}")
        if str(method).lower() not in METHOD_TYPE_IDS:
            raise ConfigError(
                f"trunk.method {method!r} is not a Boltz-2 method; one of {sorted(METHOD_TYPE_IDS)}"
            )
        if int(recycling_steps) < 0:
            raise ConfigError(f"trunk.recycling_steps must be >= 0, not {recycling_steps}")
        if str(precision) not in PRECISIONS:
            raise ConfigError(f"trunk.precision {precision!r}: one of {list(PRECISIONS)}")
        self.python = python or default_python()
        if not self.python:
            raise Boltz2WorkerError(
                "trunk backend boltz2 needs a Python environment with boltz==2.2.1 (boltz pins "
                f"numpy<2, so it cannot live in this one) and none was found: {BOLTZ_ENV_RECIPE}"
            )
        resolved = shutil.which(self.python)
        if resolved is None:
            raise Boltz2WorkerError(
                f"the Boltz environment's python {self.python!r} does not exist or is not "
                f"executable: {BOLTZ_ENV_RECIPE}"
            )
        self.recycling_steps = int(recycling_steps)
        self.msa = msa
        self.method = str(method).lower()
        self.device = str(device)
        self.precision = str(precision)
        self.seed = int(seed)
        self.checkpoint_sha256 = file_sha256(self.checkpoint)
        self._tmp = Path(tempfile.mkdtemp(prefix="boltz2-trunk-"))
        self._log_path = self._tmp / "worker.log"
        self._count = 0
        self._process: subprocess.Popen | None = None
        self._finalizer = weakref.finalize(self, _shutdown, None, self._tmp)
        try:
            info = self._start(resolved)
        except BaseException:
            self.close()
            raise
        self.info = info
        self.c_s, self.c_z = int(info["c_s"]), int(info["c_z"])
        given = zip((c_s, c_z), (self.c_s, self.c_z), strict=True)
        if any(want is not None and want != have for want, have in given):
            self.close()
            raise ConfigError(
                f"trunk.c_s/c_z are {c_s}/{c_z} but the Boltz-2 checkpoint's trunk is "
                f"{self.c_s}/{self.c_z} (token_s/token_z); set trunk.c_s: {self.c_s} and "
                f"trunk.c_z: {self.c_z}"
            )

    # ------------------------------------------------------------------ worker process
    def _start(self, python: str) -> dict[str, Any]:
        # Only our package goes on the worker's path, never the folder around it: installed
        # non-editable, that folder is the core environment's site-packages (numpy 2 beside
        # boltz's numpy<2).
        path = self._tmp / "path"
        path.mkdir()
        (path / "boltzkinema").symlink_to(_SRC / "boltzkinema", target_is_directory=True)
        env = dict(os.environ, PYTHONPATH=str(path))
        env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [
            python,
            "-m",
            "boltzkinema.trunk.boltz2_worker",
            "--serve",
            "--checkpoint",
            str(self.checkpoint.resolve()),
            "--device",
            self.device,
            "--recycling-steps",
            str(self.recycling_steps),
            "--precision",
            self.precision,
            "--seed",
            str(self.seed),
        ]
        start = time.perf_counter()
        with open(self._log_path, "wb") as stderr:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                text=True,
            )
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _shutdown, self._process, self._tmp)
        hello = self._read("while loading the checkpoint")
        if not hello.get("ready"):
            raise Boltz2WorkerError(
                f"the Boltz environment ({python}) could not load {self.checkpoint}: "
                f"{hello.get('error')}. If boltz, torch or safetensors is missing there: "
                f"{BOLTZ_ENV_RECIPE}"
            )
        log.info(
            "boltz2 worker ready in %.1f s (boltz %s, torch %s, %s, %d trunk-side parameters; "
            "dropped hyper-parameters %s)",
            time.perf_counter() - start,
            hello.get("boltz"),
            hello.get("torch"),
            hello.get("device"),
            hello.get("parameters", 0),
            hello.get("dropped_hyper_parameters"),
        )
        return hello

    def _read(self, doing: str) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait()
            raise Boltz2WorkerError(
                f"the Boltz worker ({self.python}) exited with status {code} {doing}. Its last "
                f"output:\n{self._log_tail()}\nIf it could not import boltz, torch or "
                f"safetensors: {BOLTZ_ENV_RECIPE}"
            )
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise Boltz2WorkerError(
                f"the Boltz worker answered {line[:200]!r} {doing}; its log:\n{self._log_tail()}"
            ) from None

    def _log_tail(self, lines: int = 25) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"

    def close(self) -> None:
        """Stop the worker and remove the temporary folder (also done at exit)."""
        self._finalizer()
        self._process = None

    def __enter__(self) -> Boltz2Trunk:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ backend interface
    def params(self) -> dict[str, Any]:
        return {
            "checkpoint_sha256": self.checkpoint_sha256,
            "recycling_steps": self.recycling_steps,
            "msa": self.msa,
            "method": self.method,
            "precision": self.precision,
            "seed": self.seed,
            "ref_pos": REF_POS_AUGMENTATION,
            "ligand_conformer": LIGAND_CONFORMER,
            "ccd_reference": _ccd_reference_sha256(),
            "boltz": "2.2.1",
        }

    def embed(self, system: ProcessedSystem) -> TrunkEmbedding:
        from safetensors.numpy import save_file

        if self._process is None or self._process.poll() is not None:
            raise Boltz2WorkerError("the Boltz worker is not running (backend closed?)")
        features = build_features(system, method=self.method, seed=self.seed)
        self._count += 1
        inp = self._tmp / f"in_{self._count}.safetensors"
        out = self._tmp / f"out_{self._count}.safetensors"
        save_file(features, str(inp))
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"input": str(inp), "output": str(out)}) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # reported by _read
        answer = self._read(f"while embedding {system.system_id}")
        inp.unlink(missing_ok=True)
        if not answer.get("ok"):
            raise Boltz2WorkerError(
                f"the Boltz trunk failed on {system.system_id}: {answer.get('error')}; "
                f"worker log:\n{self._log_tail()}"
            )
        emb = _read_embedding(out)
        out.unlink(missing_ok=True)
        log.info(
            "%s: %d tokens through the Boltz-2 trunk in %.2f s",
            system.system_id,
            system.n_tokens,
            answer.get("seconds", float("nan")),
        )
        return emb


def _read_embedding(path: Path, rows: int = 64) -> TrunkEmbedding:
    """The worker's float32 output; z_trunk to float16 a block of rows at a time (memory)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        s_inputs, s_trunk = f.get_tensor("s_inputs"), f.get_tensor("s_trunk")
        z = f.get_slice("z_trunk")
        n, n2, c_z = z.get_shape()
        z_trunk = np.empty((n, n2, c_z), dtype=np.float16)
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            z_trunk[start:stop] = z[start:stop]
    return TrunkEmbedding(s_inputs, s_trunk, z_trunk)


def _shutdown(process: subprocess.Popen | None, tmp: Path) -> None:
    if process is not None and process.poll() is None:
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
    if process is not None and process.stdout is not None:
        process.stdout.close()
    shutil.rmtree(tmp, ignore_errors=True)


@cache
def _ccd_reference_sha256() -> str:
    from importlib import resources

    data = resources.files("boltzkinema.trunk").joinpath("data/ccd_reference.json").read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]
