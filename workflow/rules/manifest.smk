# Stage 3: one table of every good system with its splits.


rule build_manifest:
    input:
        # Every index up front, so that all datasets are indexed in parallel.
        indices=expand(
            rules.index_dataset.output[0], dataset=sorted(config["datasets"])
        ),
        reports=per_shard(rules.preprocess.output.report),
        trunk=per_shard(rules.trunk_cache.output[0]),
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
        seed=config["splits"]["seed"],
        identity=config["splits"]["sequence_identity"],
        ood_val=config["splits"]["ood_val_fraction"],
        ood_test=config["splits"]["ood_test_fraction"],
        id_val=config["splits"]["id_val_fraction"],
        id_test=config["splits"]["id_test_fraction"],
        fixed=fixed_split_args(),
    shell:
        "python -m boltzkinema manifest --reports {input.reports:q} "
        "--trunk-indices {input.trunk:q} --results-root {params.results:q} --output {output:q} "
        "--seed {params.seed} --sequence-identity {params.identity} "
        "--ood-val-fraction {params.ood_val} --ood-test-fraction {params.ood_test} "
        "--id-val-fraction {params.id_val} --id-test-fraction {params.id_test} "
        "{params.fixed} > {log:q} 2>&1"
