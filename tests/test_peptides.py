"""The peptide MD's provenance note: every run's row, also for runs simulated by an earlier call."""

from __future__ import annotations

import json

from boltzkinema.peptides import PEPTIDE_BATCHES, peptide_name, provenance


def test_a_run_simulated_earlier_keeps_its_row_and_a_new_one_gets_its_measured_speed(tmp_path):
    old_row = "| ala2_R1 | ACE-ALA-NME | ala2 (seed 1) | 5000 | 1 | 5 | 2203 | 8.6 |"
    meta = {"ns_per_day_per_core": 1234.4, "openmm_version": "8.6"}
    (tmp_path / "leu2_R1.json").write_text(json.dumps(meta))
    note = provenance(tmp_path, f"# earlier\n\n{old_row}\n")
    rows = [line for line in note.splitlines() if line.startswith("| ")]
    assert old_row in rows
    assert "| leu2_R1 | ACE-LEU-NME | more (seed 4) | 3000 | 1 | 3 | 1234 | 8.6 |" in rows
    assert "| val2_R1 | ACE-VAL-NME | others (seed 2) | 3000 | 1 | 3 | - | - |" in rows
    n_runs = sum(len(b.runs) for b in PEPTIDE_BATCHES)
    assert len(rows) == 1 + n_runs  # the header and one row per run


def test_peptide_folders_are_named_by_sequence():
    assert peptide_name("A") == "ala2" and peptide_name("W") == "trp2"
