# Stage 8: one self-contained HTML report per run (`snakemake --report` works as well).


rule report:
    input:
        summary=rules.evaluate.output.summary,
        figures=rules.evaluate.output.figures,
        trained=rules.train.output.done,
        checkpoint=rules.resolve_checkpoint.output[0],
        manifest=rules.build_manifest.output[0],
        configs=expand(
            rules.stage_config.output[0],
            stage=("train", "sample", "evaluate"),
            allow_missing=True,
        ),
    output:
        report(
            f"{RUNS}/{{run}}/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{{run}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        eval_dir=lambda wildcards, input: str(Path(input.summary).parent),
        configs=lambda wildcards, input: " ".join(
            f"--config {q(c)}" for c in input.configs
        ),
        # Written by train beside train_done.json (a file a rerun keeps, so no declared output).
        train_log=lambda wildcards, input: str(
            Path(input.trained).parent / "train_log.parquet"
        ),
    shell:
        "python -m boltzkinema report --eval-dir {params.eval_dir:q} --run {wildcards.run} "
        "--train-log {params.train_log:q} --resolved-checkpoint {input.checkpoint:q} "
        "--manifest {input.manifest:q} {params.configs} --output {output:q} > {log:q} 2>&1"
