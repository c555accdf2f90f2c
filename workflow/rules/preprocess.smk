# Stage 1: list each dataset's systems into shards, then process one shard per job.


# The settings of the stages before training, from the validated config (schema defaults
# filled in): a job reads its own file, so a changed setting reruns exactly the jobs it affects.
rule stage_settings:
    output:
        f"{RESULTS}/settings/{{section}}.json",
    log:
        f"{RESULTS}/logs/stage_settings/{{section}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stage_settings/{{section}}.tsv"
    params:
        settings=section_settings,
    run:
        write_json(params.settings, output[0])


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
        settings=expand(
            rules.stage_settings.output[0],
            section="preprocess.{dataset}",
            allow_missing=True,
        ),
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
        qm=lambda wildcards: qm_arg(wildcards.dataset),
    shell:
        "python -m boltzkinema preprocess --index {input.index:q} --shard {wildcards.shard} "
        "--dataset {wildcards.dataset} --settings {input.settings:q} {params.qm} "
        "--output {output.shard:q} --report {output.report:q} > {log:q} 2>&1"
