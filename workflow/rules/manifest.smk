# Stage 3: one table of every good system with its splits.


rule build_manifest:
    input:
        # Every index up front, so that all datasets are indexed in parallel.
        indices=expand(
            rules.index_dataset.output[0], dataset=sorted(config["datasets"])
        ),
        reports=per_shard(rules.preprocess.output.report),
        trunk=per_shard(rules.trunk_cache.output[0]),
        settings=expand(rules.stage_settings.output[0], section="splits"),
    output:
        MANIFEST,
    log:
        f"{RESULTS}/logs/build_manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_manifest.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        results=lambda wildcards, output: results_root(output[0], depth=1),
    shell:
        "python -m boltzkinema manifest --reports {input.reports:q} "
        "--trunk-indices {input.trunk:q} --results-root {params.results:q} "
        "--settings {input.settings:q} --output {output:q} > {log:q} 2>&1"
