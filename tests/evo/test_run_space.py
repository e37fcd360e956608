"""A run's own ``[ranges]`` and ``[choices]``: the space a user states in run.toml, for any
target (an OpenEvolve folder has no target.toml to state it in)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import evo
from evo.cli import main
from evo.config import ConfigError, load_config, search_fingerprint
from operators.parsed import parsed
from operators.space import infer_space, read_point

PLAIN = Path(__file__).resolve().parent.parent / "fixtures" / "openevolve_plain"


def _toml(tmp_path: Path, body: str, **run: object) -> Path:
    keys = {"target": str(PLAIN), "run_dir": str(tmp_path / "run"), **run}
    head = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in keys.items())
    path = tmp_path / "run.toml"
    path.write_text(f"[run]\n{head}{body}")
    return path


def test_run_ranges_bound_the_search_of_an_openevolve_folder(tmp_path, capsys):
    """tpe's draws stay inside the run's bounds; the bounds it would infer from the seed
    (SLOPE = 1.0: 1/30..30) would put most draws outside them."""
    body = (
        "[operators]\nconstants = 0.0\ntpe_local = 0.0\nchoice = 0.0\ntoggle = 0.0\n"
        "uniform_crossover = 0.0\nmerge = 0.0\n"
        "[ranges]\nSLOPE = [0.5, 1.5]\nINTERCEPT = [-0.25, 0.25]\n"
    )
    toml = _toml(tmp_path, body, evaluations=10, seed=0)
    assert main(["run", str(toml), "--no-progress", "--workers", "1"]) == 0, capsys.readouterr()
    store = evo.open_run(tmp_path / "run")
    space = infer_space(PLAIN.joinpath("initial_program.py").read_text(), {}, {}, False)
    children = [p for p in store.programs.values() if p.operator == "tpe"]
    assert len(children) >= 5
    for p in children:
        point = read_point(parsed(p.source), space)
        assert 0.5 <= point["SLOPE"] <= 1.5 and -0.25 <= point["INTERCEPT"] <= 0.25, point
    resolved = (tmp_path / "run" / "config.toml").read_text()
    assert "[ranges]\nSLOPE = [0.5, 1.5]" in resolved


@pytest.mark.parametrize(
    "body, says",
    [
        ("[ranges]\nSLOPE = [1.0]\n", "'ranges.SLOPE' must be [low, high] numbers"),
        ('[ranges]\nSLOPE = ["a", 2]\n', "'ranges.SLOPE' must be [low, high] numbers"),
        ("[ranges]\nSLOPE = [true, 2]\n", "'ranges.SLOPE' must be [low, high] numbers"),
        ("[ranges]\nSLOPE = 5\n", "'ranges.SLOPE' must be [low, high] numbers"),
        ("[ranges]\nSLOPE = [2.0, 1.0]\n", "'ranges.SLOPE' has low > high (2.0 > 1.0)"),
        ("[ranges]\nSLOPE = [0.0, inf]\n", "'ranges.SLOPE' must be finite"),
        ('[choices]\nMODE = ["a"]\n', "'choices.MODE' needs at least two different"),
        ('[choices]\nMODE = ["a", "a"]\n', "'choices.MODE' needs at least two different"),
        ("[choices]\nMODE = [1, 2]\n", "'choices.MODE' must be a list of strings"),
    ],
)
def test_bad_run_space_is_one_line_naming_file_and_key(tmp_path, capsys, body, says):
    toml = _toml(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        load_config(toml)
    assert str(e.value).startswith(f"{toml}: ") and says in str(e.value)
    assert "\n" not in str(e.value)
    assert main(["run", str(toml), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert says in err and not (tmp_path / "run").exists()


def test_a_range_that_leaves_out_the_seeds_value_stops_the_run(tmp_path, capsys):
    """The bounds are hard, so a seed outside them would not be in the searched space (a
    trust region around it used to step outside them too)."""
    toml = _toml(tmp_path, "[ranges]\nSLOPE = [1.5, 3.0]\n")
    assert main(["run", str(toml), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "ranges.SLOPE: the seed's value 1.0 lies outside [1.5, 3.0]" in err
    assert not (tmp_path / "run").exists()


def test_a_constant_with_both_a_range_and_choices_stops_the_run(tmp_path, capsys):
    toml = _toml(tmp_path, '[ranges]\nSLOPE = [0.0, 2.0]\n[choices]\nSLOPE = ["1.0", "2.0"]\n')
    assert main(["run", str(toml), "--no-progress"]) == 2
    assert "SLOPE also has [choices]" in capsys.readouterr().err


def test_a_range_for_a_constant_the_seed_lacks_stops_the_run(tmp_path, capsys):
    toml = _toml(tmp_path, "[ranges]\nSLOPES = [0.0, 2.0]\n")
    assert main(["run", str(toml), "--no-progress"]) == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "ranges.SLOPES" in ln]
    assert "the seed has no numeric module-level constant SLOPES" in line
    assert line.startswith("evo run: error: the run config's [ranges] (seed ")


def test_the_space_is_part_of_what_a_run_searches(tmp_path):
    """Other bounds are another search (a resume with them is refused); none at all leaves
    the fingerprint of runs made before these sections existed (tests/evo/test_inputs.py)."""
    plain = search_fingerprint(load_config(_toml(tmp_path, "")))
    bounded = search_fingerprint(load_config(_toml(tmp_path, "[ranges]\nSLOPE = [0.5, 1.5]\n")))
    other = search_fingerprint(load_config(_toml(tmp_path, "[ranges]\nSLOPE = [0.5, 2.5]\n")))
    assert len({plain, bounded, other}) == 3


def test_a_refused_resume_says_what_differs(tmp_path, capsys):
    """Other bounds, another operator weight, a changed harness file: the one line names each."""
    folder = tmp_path / "plain"
    shutil.copytree(PLAIN, folder)
    toml = _toml(tmp_path, "[ranges]\nSLOPE = [0.5, 1.5]\n", target=str(folder), evaluations=2)
    assert main(["run", str(toml), "--no-progress"]) == 0, capsys.readouterr()
    capsys.readouterr()
    toml.write_text(
        toml.read_text().replace("[0.5, 1.5]", "[0.5, 2.5]") + "[operators]\ntpe = 3.0\n"
    )
    evaluator = folder / "evaluator.py"
    evaluator.write_text(evaluator.read_text() + "\n# changed\n")
    assert main(["run", str(toml), "--no-progress"]) == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "another target" in ln]
    assert "target files changed since: evaluator.py" in line
    assert "ranges.SLOPE: [0.5, 1.5] -> [0.5, 2.5]" in line and "operators.tpe: 2.0 -> 3.0" in line


def test_a_seed_that_failed_before_a_fix_says_so_and_force_new_measures_it_again(
    tmp_path, capsys, monkeypatch
):
    """The fix is outside the target (an environment variable passed on), so the run dir
    still matches: its stored failure is reported as such, and --force-new starts over."""
    folder = tmp_path / "plain"
    shutil.copytree(PLAIN, folder)
    seed = folder / "initial_program.py"
    seed.write_text(
        "import os\nassert os.environ.get('EVO_TEST_FLAG') == '1', 'flag unset'\n"
        + seed.read_text()
    )
    toml = _toml(tmp_path, "", target=str(folder), evaluations=3)
    assert main(["run", str(toml), "--no-progress"]) == 2
    first = capsys.readouterr().err
    assert "fails its baseline" in first and "earlier attempt" not in first
    monkeypatch.setenv("EVO_TEST_FLAG", "1")
    toml.write_text(toml.read_text().replace("[run]\n", '[run]\npass_env = ["EVO_TEST_FLAG"]\n'))
    assert main(["run", str(toml), "--no-progress"]) == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "fails its baseline" in ln]
    assert "measured by an earlier attempt" in line and "--force-new" in line
    assert main(["run", str(toml), "--no-progress", "--force-new"]) == 0, capsys.readouterr()
    assert [p.name for p in tmp_path.glob("run.old-*")]  # the failed attempt is kept aside
    assert evo.open_run(tmp_path / "run").best().ok


def test_an_unknown_target_lists_every_built_in_target_of_either_layout():
    """``function_minimization`` is an OpenEvolve folder (no target.toml) and runs as a
    built-in: the error for a mistyped target must offer it too."""
    from evo.config import resolve_target_path

    with pytest.raises(ConfigError) as e:
        resolve_target_path("no_such_target_xyz")
    assert "circle_packing, function_minimization, tinygpt" in str(e.value)
    assert resolve_target_path("function_minimization").name == "function_minimization"
