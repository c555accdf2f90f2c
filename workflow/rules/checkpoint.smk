# Stage 5: pick the checkpoint later stages use (latest, best or an explicit path).


rule resolve_checkpoint:
    input:
        rules.train.output.done,
    output:
        f"{RUNS}/{{run}}/checkpoint.json",
    log:
        f"{RESULTS}/logs/resolve_checkpoint/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/resolve_checkpoint/{{run}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        policy=config["checkpoint"]["policy"],
        path=explicit_checkpoint_arg,
        run_dir=lambda wildcards, input: str(Path(input[0]).parent),
    shell:
        "python -m boltzkinema resolve-checkpoint --run-dir {params.run_dir:q} "
        "--policy {params.policy} {params.path} --output {output:q} > {log:q} 2>&1"
