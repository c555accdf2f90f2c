# Stage 6: generate trajectories from the resolved checkpoint, per system and mode.


rule sample:
    input:
        checkpoint=rules.resolve_checkpoint.output[0],
        manifest=rules.build_manifest.output[0],
        config=expand(rules.stage_config.output[0], stage="sample", allow_missing=True),
    output:
        npz=f"{RUNS}/{{run}}/samples/{{system}}/{{mode}}.npz",
        pdb=report(
            f"{RUNS}/{{run}}/samples/{{system}}/{{system}}.{{mode}}.pdb",
            caption="../report/sample.rst",
            category="Samples",
        ),
    log:
        f"{RESULTS}/logs/sample/{{run}}/{{system}}.{{mode}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample/{{run}}/{{system}}.{{mode}}.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        gpu=1,
    params:
        results=lambda wildcards, input: results_root(input.manifest, depth=1),
        out_dir=lambda wildcards, output: str(Path(output.npz).parent),
    shell:
        "python -m boltzkinema sample --resolved-checkpoint {input.checkpoint:q} "
        "--manifest {input.manifest:q} --results-root {params.results:q} "
        "--system {wildcards.system} --mode {wildcards.mode} --config {input.config:q} "
        "--output-dir {params.out_dir:q} > {log:q} 2>&1"
