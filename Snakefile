# Boltz-Kinema: raw MD -> shards -> trunk -> manifest -> train -> checkpoint -> sample -> evaluate.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "src/boltzkinema/config.schema.yaml")

# A preset on top of config/config.yaml may run only its own datasets (e.g. config/peptides.yaml).
if config["only_datasets"]:
    unknown = sorted(set(config["only_datasets"]) - set(config["datasets"]))
    if unknown:
        raise ValueError(
            f"only_datasets names {unknown}; datasets are {sorted(config['datasets'])}"
        )
    config["datasets"] = {k: config["datasets"][k] for k in config["only_datasets"]}


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/trunk.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/checkpoint.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/simulate.smk"


rule all:
    default_target: True
    input:
        MANIFEST,
        f"{RUNS}/{RUN}/checkpoint.json",
        f"{RUNS}/{RUN}/report.html",
