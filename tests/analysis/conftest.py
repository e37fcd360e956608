"""Session fixtures: real small runs shared by the analysis tests (see analysis_helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_helpers import CIRCLE, QUAD, Planted, substitute

import evo
from evo.cli import main


def _seed_files(run_dir: Path, target: str, files: dict[str, str]) -> dict[str, str]:
    from operators import canonical_hash

    paths = []
    for name, source in files.items():
        path = run_dir.parent / f"{name}.py"
        path.write_text(source)
        paths.append(str(path))
    assert main(["seed", str(run_dir), *paths, "--target", target]) == 0  # as a user adds them
    return {name: canonical_hash(source) for name, source in files.items()}


@pytest.fixture(scope="session")
def cp_run(tmp_path_factory) -> Planted:
    base = tmp_path_factory.mktemp("cp")
    run_dir = base / "cp_run"
    seed = (CIRCLE / "pack.py").read_text()
    ids = _seed_files(
        run_dir,
        "circle_packing",
        {"planted": substitute(seed, STEP_SIZE="0.1", STEP_DECAY="0.999")},
    )
    evo.run(target="circle_packing", run_dir=str(run_dir), evaluations=30, workers=2, seed=0)
    return Planted(run_dir, ids)


@pytest.fixture(scope="session")
def quad_run(tmp_path_factory) -> Planted:
    base = tmp_path_factory.mktemp("quad")
    run_dir = base / "quad_run"
    seed = (QUAD / "bowl.py").read_text()
    redundant = substitute(seed, W="0.0").replace("return X, Y, Z, W", "return X, Y, Z, 0.0")
    assert redundant.count("0.0") >= 2
    ids = _seed_files(
        run_dir,
        str(QUAD),
        {"additive": substitute(seed, X="1.0", Y="-0.5"), "redundant": redundant},
    )
    evo.run(target=str(QUAD), run_dir=str(run_dir), evaluations=14, workers=2, seed=0)
    return Planted(run_dir, ids)
