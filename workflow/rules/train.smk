# Stage 4: train the diffusion model. A rerun resumes from the run's latest checkpoint (and
# continues when `steps` grew); checkpoints and train_log.parquet are never deleted by a rerun.
# Delete results/runs/{run}/ (or pick a new run name) to train from scratch. A run whose start
# (init_from) changed, as a phase does when the phase before retrained, sets its old checkpoints
# aside in superseded/ and trains again.


rule stage_config:
    output:
        f"{RUNS}/{{run}}/{{stage}}_config.json",
    log:
        f"{RESULTS}/logs/stage_config/{{run}}.{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stage_config/{{run}}.{{stage}}.tsv"
    params:
        settings=stage_settings,
    run:
        write_json(params.settings, output[0])


rule train:
    input:
        manifest=rules.build_manifest.output[0],
        config=expand(rules.stage_config.output[0], stage="train", allow_missing=True),
        init=start_files,
    output:
        done=f"{RUNS}/{{run}}/train_done.json",
    log:
        f"{RESULTS}/logs/train/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{run}}.tsv"
    wildcard_constraints:
        run=FINAL_RUN,
    conda:
        "../../envs/core.yaml"
    resources:
        **train_resources(),
    params:
        # On one node a profile's set-resources (train:gpu=N) decides the device count
        # (gpu=0, a CPU node: one process).
        devices=lambda wildcards, resources: resources.get(
            "gpu", config["train"]["devices"]
        ),
        results=lambda wildcards, input: results_root(input.manifest, depth=1),
        run_dir=lambda wildcards, output: str(Path(output.done).parent),
    shell:
        "python -m boltzkinema train --devices {params.devices} --manifest {input.manifest:q} "
        "--results-root {params.results:q} --config {input.config:q} "
        "--run-dir {params.run_dir:q} --output {output.done:q} > {log:q} 2>&1"


# The phases before the last train under their own rule name: `--until train` stops at the jobs
# of the rule it names, so that it reaches the last phase only through these.
use rule train as train_phase with:
    wildcard_constraints:
        run=EARLIER_RUNS,
