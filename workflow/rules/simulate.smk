# Optional: regenerate the bundled example with OpenMM (not part of the default target).
# Writes under results/; copy results/example/* to resources/example/ to replace the bundle.


rule simulate_example:
    output:
        directory(f"{RESULTS}/example"),
    log:
        f"{RESULTS}/logs/simulate_example.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate_example.tsv"
    conda:
        "../../envs/sim.yaml"
    threads: 2
    params:
        inputs="resources/example/inputs",
        work=f"{RESULTS}/simulate",
    shell:
        "python -m boltzkinema simulate-example --inputs {params.inputs:q} "
        "--work {params.work:q} --output {output:q} --threads {threads} > {log:q} 2>&1"


# Optional: regenerate the learning benchmark's peptide MD (resources/peptides) with OpenMM.
# One job per batch of replicas (one core each), then the ATLAS layout of every peptide.
rule simulate_peptides:
    output:
        directory(f"{RESULTS}/peptides"),
    log:
        f"{RESULTS}/logs/simulate_peptides.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate_peptides.tsv"
    conda:
        "../../envs/sim.yaml"
    threads: 1
    params:
        work=f"{RESULTS}/simulate_peptides",
    shell:
        "python -m boltzkinema simulate-peptides --work {params.work:q} --output {output:q} "
        "--threads {threads} > {log:q} 2>&1"
