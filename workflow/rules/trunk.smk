# Stage 2: frozen trunk embeddings per unique topology, cached across shards and replicas.


rule trunk_cache:
    input:
        shard=f"{RESULTS}/processed/{{dataset}}/{{shard}}.h5",
    output:
        f"{RESULTS}/trunk/{{dataset}}/{{shard}}.json",
    log:
        f"{RESULTS}/logs/trunk/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/trunk/{{dataset}}/{{shard}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        embeddings=EMBEDDINGS,
        results=lambda wildcards, output: results_root(output[0], depth=3),
        backend=config["trunk"]["backend"],
        c_s=config["trunk"]["c_s"],
        c_z=config["trunk"]["c_z"],
        seed=config["trunk"]["seed"],
    shell:
        "python -m boltzkinema trunk --shard {input.shard} --output {output} "
        "--embeddings {params.embeddings} --results-root {params.results} "
        "--backend {params.backend} --c-s {params.c_s} --c-z {params.c_z} "
        "--seed {params.seed} 2> {log}"
