"""Bad input to evo plot/report/ablate: one clear line on stderr, exit status 2, no traceback;
a run holding only its seed is plotted and reported, but has nothing to ablate."""

from __future__ import annotations

import shutil

import h5py
import pytest
from analysis_helpers import QUAD, evo_cli

import analysis
import evo
from archive import Dim, Program, RunStore
from evo.cli import main

COMMANDS = (["plot"], ["report"], ["ablate"])


def one_line_error(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"evo {argv[0]}: error: "), err
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_missing_dir(cmd, tmp_path, capsys):
    one_line_error(capsys, [*cmd, str(tmp_path / "nope")], "no such run dir")


@pytest.mark.parametrize("cmd", COMMANDS)
def test_not_a_run_dir(cmd, tmp_path, capsys):
    one_line_error(capsys, [*cmd, str(tmp_path)], "archive.h5: missing")


@pytest.mark.parametrize("cmd", COMMANDS)
def test_empty_run(cmd, tmp_path, capsys):
    RunStore.create(
        tmp_path / "empty", dims=[Dim(name="x", bins=4)], direction="minimize", meta={}
    ).close()
    one_line_error(capsys, [*cmd, str(tmp_path / "empty")], "empty run, no program recorded")


def test_run_with_only_a_pending_program(tmp_path, capsys):
    with RunStore.create(
        tmp_path / "r", dims=[Dim(name="x", bins=4)], direction="minimize", meta={"fidelity": "f"}
    ) as store:
        store.add(Program(id="a", source="x = 1\n", fidelity="f"))
    one_line_error(capsys, ["report", str(tmp_path / "r")], "no evaluation has finished yet")


@pytest.mark.parametrize("cmd", COMMANDS)
def test_newer_schema(cmd, quad_run, tmp_path, capsys):
    newer = tmp_path / "newer"
    shutil.copytree(quad_run.run_dir, newer)
    with h5py.File(newer / "archive.h5", "r+") as f:
        f.attrs["schema_version"] = 99
    one_line_error(capsys, [*cmd, str(newer)], "schema version 99 is newer")


def test_unwritable_output(quad_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(
        capsys,
        ["plot", str(quad_run.run_dir), "--out", str(blocker / "sub")],
        "cannot create the output folder",
    )
    one_line_error(
        capsys,
        ["report", str(quad_run.run_dir), "--out", str(tmp_path / "no" / "report.md")],
        "cannot write the report",
    )


def test_a_run_of_one_program(tmp_path, capsys):
    run_dir = tmp_path / "one"
    evo.run(target=str(QUAD), run_dir=str(run_dir), evaluations=2, workers=2)  # the seed only
    run = analysis.load_run(run_dir)
    assert len(run.finished) == 1 and run.best.id == run.seed_id

    assert main(["plot", str(run_dir), "--out", str(tmp_path / "plots")]) == 0
    assert len(list((tmp_path / "plots").glob("*.png"))) == len(analysis.PLOTS)
    capsys.readouterr()
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "The best program is the seed" in out and "hit rate **0.0%**" in out
    one_line_error(capsys, ["ablate", str(run_dir)], "nothing to ablate")


def test_the_evo_command_itself_prints_one_line(tmp_path):
    r = evo_cli("plot", str(tmp_path / "nope"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (
        f"evo plot: error: {tmp_path / 'nope'}: no such run dir; check "
        "the path (a run dir is made by 'evo run')"
    )
