# Stage 8: one self-contained HTML report per run (`snakemake --report` works as well).


rule report:
    input:
        summary=f"{RUNS}/{{run}}/eval/summary.parquet",
        figures=f"{RUNS}/{{run}}/eval/figures",
    output:
        report(
            f"{RUNS}/{{run}}/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{{run}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        eval_dir=lambda wildcards, input: str(Path(input.summary).parent),
    shell:
        "python -m boltzkinema report --eval-dir {params.eval_dir:q} --run {wildcards.run} "
        "--output {output:q} > {log:q} 2>&1"
