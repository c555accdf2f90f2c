# Stage 2: frozen trunk embeddings per unique topology, cached across shards and replicas.


rule trunk_cache:
    # The rule runs in the core environment; backend boltz2 starts its own worker in the Boltz
    # environment (trunk.python), so no conda directive for boltz is needed here.
    input:
        shard=rules.preprocess.output.shard,
        settings=expand(rules.stage_settings.output[0], section="trunk"),
        checkpoint=[TRUNK["checkpoint"]] if TRUNK["backend"] == "boltz2" else [],
    output:
        f"{RESULTS}/trunk/{{dataset}}/{{shard}}.json",
    log:
        f"{RESULTS}/logs/trunk/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/trunk/{{dataset}}/{{shard}}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: TRUNK["threads"]
    resources:
        gpu=trunk_gpus(),
    params:
        embeddings=EMBEDDINGS,
        results=lambda wildcards, output: results_root(output[0], depth=3),
        paths=trunk_path_args(),
    shell:
        "OMP_NUM_THREADS={threads} python -m boltzkinema trunk --shard {input.shard:q} "
        "--settings {input.settings:q} --output {output:q} --embeddings {params.embeddings:q} "
        "--results-root {params.results:q} {params.paths} > {log:q} 2>&1"
