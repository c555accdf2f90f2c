# Shared helpers: paths, per-dataset options and the shard lists read from the dataset indices.
import copy
import json
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

RESULTS = config["results"]
PRE = config["preprocess"]
MANIFEST = f"{RESULTS}/manifest.parquet"
EMBEDDINGS = f"{RESULTS}/trunk/embeddings"
RUNS = f"{RESULTS}/runs"
TRUNK = config["trunk"]
GLOB_CHARS = set("*?[")


def plan_phases():
    """Each training run's train settings, in training order: the phases (config ``phases``),
    each the train section with its overrides on top, validated, and starting from the
    previous phase's checkpoint.json unless it names its own ``init_from``; without phases,
    the one run ``train.run``."""
    if not config["phases"]:
        return {config["train"]["run"]: config["train"]}
    plan, previous = {}, None
    for phase in config["phases"]:
        name = phase["run"]
        if name in plan:
            raise ValueError(
                f"phases: the run name {name!r} is used twice; give each phase its own"
            )
        train = copy.deepcopy(config["train"])
        if previous is not None:
            train["init_from"] = f"{RUNS}/{previous}/checkpoint.json"
        update_config(train, copy.deepcopy(phase["train"]))
        train["run"] = name
        try:
            validate(
                {**config, "phases": [], "train": train},
                "../../src/boltzkinema/config.schema.yaml",
            )
        except WorkflowError as exc:
            raise WorkflowError(
                f"phases: the train overrides of phase {name!r} give an invalid train section; "
                "fix that phase's train settings",
                exc,
            ) from exc
        plan[name], previous = train, name
    return plan


PHASES = plan_phases()
# The run that sample, evaluate and the report use: the last phase. The earlier phases train
# under rule train_phase, the last (or any run, without phases) under rule train.
RUN = list(PHASES)[-1]
FINAL_RUN = re.escape(RUN) if config["phases"] else "[A-Za-z0-9_.-]+"
EARLIER_RUNS = "|".join(map(re.escape, list(PHASES)[:-1])) or "(?!)"


wildcard_constraints:
    dataset="[A-Za-z][A-Za-z0-9_]*",
    shard="[0-9]{4}",
    run="[A-Za-z0-9_.-]+",
    stage="train|sample|evaluate",
    section=r"preprocess\.[A-Za-z][A-Za-z0-9_]*|trunk|splits",
    mode="forecast|interpolate|hierarchical|unbinding",


def q(value):
    """One value as one shell word: every path or option a rule puts into a shell line goes
    through here (or through Snakemake's ``{...:q}``, the same ``shlex.quote``)."""
    return shlex.quote(str(value))


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def raw_inputs(wildcards):
    """Raw files named literally in the config (glob patterns are expanded by the job)."""
    cfg = dataset_cfg(wildcards.dataset)
    paths = [p for p in cfg["inputs"] if not GLOB_CHARS & set(p)]
    return paths + ([cfg["topology"]] if "topology" in cfg else [])


def index_args(dataset):
    cfg = dataset_cfg(dataset)
    args = [f"--format {cfg['format']}"]
    args += [f"--input {q(p)}" for p in cfg["inputs"]]
    if "topology" in cfg:
        args.append(f"--topology {q(cfg['topology'])}")
    args.append(f"--shard-size {cfg.get('shard_size', PRE['shard_size'])}")
    return " ".join(args)


# What the index job takes (paths, the reader, the shard size); every other preprocess or
# dataset setting is a processing option and goes into the preprocess settings file.
INDEX_SETTINGS = ("format", "inputs", "topology", "qm", "shard_size")


def section_settings(wildcards):
    """What stage_settings writes: a dataset's preprocess settings (the preprocess section with
    the dataset's own on top), the trunk section less its paths and threads (which change no
    embedding), or the splits section.
    """
    if wildcards.section == "trunk":
        return {
            k: v
            for k, v in TRUNK.items()
            if k not in ("checkpoint", "python", "threads")
        }
    if wildcards.section == "splits":
        return config["splits"]
    cfg = dataset_cfg(wildcards.section.removeprefix("preprocess."))
    merged = PRE | cfg
    return {k: v for k, v in merged.items() if k not in INDEX_SETTINGS}


def qm_arg(dataset):
    qm = dataset_cfg(dataset).get("qm")
    return f"--qm {q(qm)}" if qm else ""


def write_json(value, path):
    """Write JSON to a temporary name, then rename (never a half-written file)."""
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def train_resources():
    """The train job's resources: its GPUs on one node; on several, SLURM's node count, one
    task per node and ``devices`` GPUs per node. ``mpi`` tells the executor that the command
    starts its own job steps (``python -m boltzkinema train`` runs srun, see train/launch.py).
    """
    train = config["train"]
    nodes, devices = train["nodes"], train["devices"]
    if nodes == 1:
        return {"gpu": devices}
    return {
        "nodes": nodes,
        "tasks": nodes,
        "tasks_per_gpu": 0,
        "mpi": "srun",
        "gres": f"gpu:{devices}",
    }


def train_settings(run):
    """The train settings of a run: its phase's, or the train section for any other run."""
    return PHASES.get(run, config["train"])


def stage_settings(wildcards):
    """What stage_config writes for a run's stage."""
    if wildcards.stage == "train":
        return train_settings(wildcards.run)
    return config[wildcards.stage]


def start_files(wildcards):
    """The file a run starts from, when the DAG makes or watches it: a weights file (e.g.
    boltz2_conf.ckpt), or the checkpoint.json of the phase before. Any other run's
    checkpoint.json is not an input, so that this config never retrains that run."""
    init = train_settings(wildcards.run).get("init_from")
    if not init:
        return []
    phase_starts = {
        f"{RUNS}/{run}/checkpoint.json" for run in PHASES if run != wildcards.run
    }
    return [init] if not init.endswith(".json") or init in phase_starts else []


def explicit_checkpoint_arg(wildcards):
    path = config["checkpoint"].get("path")
    return f"--path {q(path)}" if path else ""


def sample_files(wildcards):
    """Every {mode}.npz the config asks for."""
    return [
        f"{RUNS}/{wildcards.run}/samples/{system}/{mode}.npz"
        for system in config["sample"]["systems"]
        for mode in config["sample"]["modes"]
    ]


def results_root(path, depth):
    """The results folder, ``depth`` levels above one of a job's files: Snakemake's linter
    wants a path prefix inferred from the job's files (under remote storage they move), not
    the RESULTS constant."""
    return str(Path(path).parents[depth - 1])


def shards_of(dataset):
    """Shard names of a dataset, from its index (available once the checkpoint ran)."""
    index = checkpoints.index_dataset.get(dataset=dataset).output[0]
    with open(index) as f:
        return sorted(json.load(f)["shards"])


def per_shard(pattern):
    """Input function: ``pattern`` formatted for every shard of every dataset."""

    def inputs(wildcards):
        return [
            pattern.format(dataset=ds, shard=shard)
            for ds in sorted(config["datasets"])
            for shard in shards_of(ds)
        ]

    return inputs


def trunk_path_args():
    """The trunk's paths on the command line: the Boltz-2 checkpoint and its python."""
    if TRUNK["backend"] != "boltz2":
        return ""
    args = [f"--boltz2-checkpoint {q(TRUNK['checkpoint'])}"]
    if TRUNK.get("python"):
        args.append(f"--python {q(TRUNK['python'])}")
    return " ".join(args)


def trunk_gpus():
    """GPUs a trunk job holds: one for a Boltz-2 worker on CUDA, so such jobs take turns."""
    uses_gpu = TRUNK["backend"] == "boltz2" and str(TRUNK["device"]).startswith("cuda")
    return 1 if uses_gpu else 0
