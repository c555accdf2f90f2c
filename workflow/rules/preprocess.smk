# Stage 1: list each dataset's systems into shards, then process one shard per job.


checkpoint index_dataset:
    input:
        raw_inputs,
    output:
        f"{RESULTS}/index/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/index/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/index/{{dataset}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        args=lambda wildcards: index_args(wildcards.dataset),
    shell:
        "python -m boltzkinema index --dataset {wildcards.dataset} {params.args} "
        "--output {output:q} > {log:q} 2>&1"


rule preprocess:
    input:
        index=rules.index_dataset.output[0],
    output:
        shard=f"{RESULTS}/processed/{{dataset}}/{{shard}}.h5",
        report=f"{RESULTS}/processed/{{dataset}}/{{shard}}.report.json",
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{dataset}}/{{shard}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        args=lambda wildcards: preprocess_args(wildcards.dataset),
    shell:
        "python -m boltzkinema preprocess --index {input.index:q} --shard {wildcards.shard} "
        "--dataset {wildcards.dataset} {params.args} "
        "--output {output.shard:q} --report {output.report:q} > {log:q} 2>&1"
