"""The command lines run by hand exactly as the rules run them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from boltzkinema.cli import main
from conftest import EXAMPLE, settings_file


@pytest.mark.parametrize(
    "command", ["index", "preprocess", "trunk", "manifest", "simulate-example"]
)
def test_every_step_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "--output" in capsys.readouterr().out


def test_preprocess_by_hand_from_raw_files(tmp_path):
    out, report = tmp_path / "ala2" / "0000.h5", tmp_path / "ala2" / "0000.report.json"
    code = main(
        [
            "preprocess",
            "--format",
            "mdtraj",
            "--input",
            str(EXAMPLE / "mdtraj" / "ala2_tip3p.dcd"),
            "--topology",
            str(EXAMPLE / "mdtraj" / "ala2_tip3p.prmtop"),
            "--settings",  # a dcd holds no times: the spacing must be given
            str(settings_file(tmp_path / "settings.json", frame_dt_ns=0.0005)),
            "--output",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    entry = json.loads(report.read_text())["systems"][0]
    assert entry["system_id"] == "ala2.ala2_tip3p"
    assert entry["frame_dt_evidence"]["source"] == "config"
    assert entry["n_atoms"] == 10 and entry["n_tokens"] == 3  # ACE-ALA-NME heavy atoms
    assert entry["unit"]["detected"] == "nm"


def test_errors_are_one_line_messages_with_exit_code_1(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "boltzkinema",
            "index",
            "--dataset",
            "d",
            "--format",
            "atlas",
            "--input",
            str(tmp_path / "missing"),
            "--output",
            str(tmp_path / "i.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "no systems found" in proc.stderr and "Traceback" not in proc.stderr
