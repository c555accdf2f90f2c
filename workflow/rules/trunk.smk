# Stage 2: frozen trunk embeddings per unique topology, cached across shards and replicas.


rule trunk_cache:
    input:
        shard=f"{RESULTS}/processed/{{dataset}}/{{shard}}.h5",
    output:
        f"{RESULTS}/trunk/{{dataset}}/{{shard}}.json",
    params:
        embeddings=EMBEDDINGS,
        backend=config["trunk"]["backend"],
        c_s=config["trunk"]["c_s"],
        c_z=config["trunk"]["c_z"],
        seed=config["trunk"]["seed"],
    log:
        f"{RESULTS}/logs/trunk/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/trunk/{{dataset}}/{{shard}}.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m boltzkinema trunk --shard {input.shard} --output {output} "
        "--embeddings {params.embeddings} --results-root {RESULTS} "
        "--backend {params.backend} --c-s {params.c_s} --c-z {params.c_z} "
        "--seed {params.seed} 2> {log}"
