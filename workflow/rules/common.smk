# Shared helpers: paths, per-dataset options and the shard lists read from the dataset indices.
import json
import shlex
from pathlib import Path

RESULTS = config["results"]
PRE = config["preprocess"]
MANIFEST = f"{RESULTS}/manifest.parquet"
EMBEDDINGS = f"{RESULTS}/trunk/embeddings"
RUNS = f"{RESULTS}/runs"
RUN = config["train"]["run"]
TRUNK = config["trunk"]
INIT_FROM = config["train"].get("init_from")
GLOB_CHARS = set("*?[")


wildcard_constraints:
    dataset="[A-Za-z][A-Za-z0-9_]*",
    shard="[0-9]{4}",
    run="[A-Za-z0-9_.-]+",
    stage="train|sample|evaluate",
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


def preprocess_args(dataset):
    cfg = dataset_cfg(dataset)
    args = [
        f"--units {cfg.get('units', 'auto')}",
        f"--unit-confidence-threshold {PRE['unit_confidence_threshold']}",
        f"--jump-threshold {PRE['jump_threshold_angstrom']}",
        f"--peptide-ligand-max-residues {cfg.get('peptide_ligand_max_residues', 20)}",
    ]
    if "frame_dt_ns" in cfg:
        args.append(f"--frame-dt-ns {cfg['frame_dt_ns']}")
    if cfg.get("hydrogens", PRE["hydrogens"]):
        args.append("--hydrogens")
    args += [f"--keep-residue {q(name)}" for name in cfg.get("keep_residues", [])]
    if PRE["strict"]:
        args.append("--strict")
    if "qm" in cfg:
        args.append(f"--qm {q(cfg['qm'])}")
    return " ".join(args)


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
    """The results folder, ``depth`` levels above an output file."""
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


def trunk_backend_args():
    """Command-line options of the configured trunk backend, each value shell-quoted."""
    options = {"backend": TRUNK["backend"], "c-s": TRUNK["c_s"], "c-z": TRUNK["c_z"]}
    options["seed"] = TRUNK["seed"]
    if TRUNK["backend"] == "boltz2":
        for key in (
            "checkpoint",
            "recycling_steps",
            "msa",
            "method",
            "device",
            "precision",
        ):
            options[key.replace("_", "-")] = TRUNK[key]
        if TRUNK.get("python"):
            options["python"] = TRUNK["python"]
    return " ".join(f"--{k} {q(v)}" for k, v in options.items())


def fixed_split_args():
    """``--fixed`` options of the hand-chosen splits (splits.fixed), each shell-quoted."""
    specs = [
        f"{f['systems']}={f['split']}{':ood' if f.get('ood') else ''}"
        for f in config["splits"].get("fixed", [])
    ]
    return " ".join(f"--fixed {q(s)}" for s in specs)


def trunk_gpus():
    """GPUs a trunk job holds: one for a Boltz-2 worker on CUDA, so such jobs take turns."""
    uses_gpu = TRUNK["backend"] == "boltz2" and str(TRUNK["device"]).startswith("cuda")
    return 1 if uses_gpu else 0
