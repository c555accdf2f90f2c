# Stage 7: metrics against reference MD and baselines, per split; figures; LanceDB rows.


rule evaluate:
    input:
        samples=sample_files,
        manifest=rules.build_manifest.output[0],
        checkpoint=rules.resolve_checkpoint.output[0],
        config=expand(
            rules.stage_config.output[0], stage="evaluate", allow_missing=True
        ),
    output:
        summary=report(
            f"{RUNS}/{{run}}/eval/summary.parquet",
            caption="../report/summary.rst",
            category="Evaluation",
        ),
        per_system=f"{RUNS}/{{run}}/eval/per_system.parquet",
        figures=report(
            directory(f"{RUNS}/{{run}}/eval/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/evaluate/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{run}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        results=lambda wildcards, input: results_root(input.manifest, depth=1),
        out_dir=lambda wildcards, output: str(Path(output.summary).parent),
    shell:
        "python -m boltzkinema evaluate --samples {input.samples:q} "
        "--manifest {input.manifest:q} --results-root {params.results:q} "
        "--resolved-checkpoint {input.checkpoint:q} --config {input.config:q} --run {wildcards.run} "
        "--output-dir {params.out_dir:q} --output {output.summary:q} > {log:q} 2>&1"
