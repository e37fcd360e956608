"""circle_packing end to end (the harness as a subprocess) and its verifier's rules."""

from __future__ import annotations

import importlib.util
import math

import pytest
from targets_testkit import TARGETS, run_target

from evo.target import load_target

SEED_SCORE = 1.5689630155414205
"""sum_radii of the seed pack.py with EVO_SEED=0 (numpy's PCG64 stream is stable)."""


@pytest.fixture(scope="module")
def target():
    return load_target(TARGETS / "circle_packing")


@pytest.fixture(scope="module")
def harness():
    path = TARGETS / "circle_packing/harness.py"
    spec = importlib.util.spec_from_file_location("circle_packing_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_is_valid_with_its_known_score(target, tmp_path):
    proc, result = run_target(target, tmp_path / "a", seed=0)
    assert proc.returncode == 0, proc.stderr
    assert result["valid"] == 1 and result["n_circles"] == 26
    assert result["sum_radii"] == pytest.approx(SEED_SCORE, abs=1e-9)
    assert 1.5 < result["sum_radii"] < 2.635983  # room to improve up to the best known
    assert result["min_gap"] >= 0.0
    _, other = run_target(target, tmp_path / "b", seed=1)
    assert other["valid"] == 1 and other["sum_radii"] != result["sum_radii"]


def test_overlapping_variant_is_rejected(target, tmp_path):
    source = target.seed_source()
    assert source.count("return radii * (1 - 1e-9)") == 1
    proc, result = run_target(
        target,
        tmp_path / "c",
        source=source.replace("return radii * (1 - 1e-9)", "return radii * 1.05"),
    )
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "invalid_result"
    assert "overlap" in result["reason"] or "leaves the square" in result["reason"]


def test_program_cannot_forge_the_result(target, tmp_path):
    # Write a perfect score wherever EVO_RESULT points, then kill the verifying parent.
    cheat = target.seed_source() + (
        "\nimport json as _json, os as _os, signal as _signal\n"
        "_path = _os.environ.get('EVO_RESULT')\n"
        "if _path:\n"
        "    open(_path, 'w').write(_json.dumps({'sum_radii': 99.0, 'valid': 1}))\n"
        "_os.kill(_os.getppid(), _signal.SIGKILL)\n"
    )
    proc, result = run_target(target, tmp_path / "d", source=cheat)
    assert proc.returncode != 0
    assert result == {}  # the program never saw EVO_RESULT


def test_constructor_exception_is_a_crash(target, tmp_path):
    source = target.seed_source().replace(
        "def construct(seed=0):\n", "def construct(seed=0):\n    raise RuntimeError('boom')\n"
    )
    proc, result = run_target(target, tmp_path / "e", source=source)
    assert proc.returncode != 0 and "boom" in proc.stderr
    assert result == {}


def _grid(r):
    """26 equal circles on a 6 x 5 grid (4 cells unused), radius r."""
    centers = [[(2 * i + 1) / 12, (2 * j + 1) / 10] for j in range(5) for i in range(6)][:26]
    return centers, [r] * 26


def test_touching_circles_are_valid(harness):
    metrics = harness.verify(*_grid(1 / 12))  # neighbours on a row touch exactly
    assert metrics["sum_radii"] == pytest.approx(26 / 12)
    assert metrics["min_gap"] == pytest.approx(0.0, abs=1e-12)


def test_overlap_of_one_nanometre_in_a_unit_square_is_rejected(harness):
    centers, radii = _grid(1 / 12)
    radii[7] += 1e-9  # an interior circle; its row neighbours touch it exactly
    with pytest.raises(harness.InvalidPacking, match="circles 6 and 7 overlap"):
        harness.verify(centers, radii)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c, r: ([[c[0][0] - 0.01, c[0][1]]] + c[1:], r), "leaves the square"),
        (lambda c, r: (c, [0.0] + r[1:]), "<= 0"),
        (lambda c, r: (c, [math.nan] + r[1:]), "non-finite"),
        (lambda c, r: (c[:25], r[:25]), "exactly 26"),
        (lambda c, r: ([[0.5]] + c[1:], r), "pair"),
        (lambda c, r: (c, ["0.1"] + r[1:]), "not a number"),
    ],
)
def test_verifier_rejects_bad_packings(harness, edit, message):
    centers, radii = edit(*_grid(1 / 12 - 1e-6))
    with pytest.raises(harness.InvalidPacking, match=message):
        harness.verify(centers, radii)


def test_the_circle_count_the_harness_needs_is_held_fixed(target):
    """N_CIRCLES is a module constant of pack.py, so the structural operators would search it
    (``tpe`` drew 21, 24 and 95: every such child is invalid); ``[ranges]`` holds it at 26."""
    from operators.space import infer_space

    space = infer_space(target.seed_source(), target.ranges, target.choices)
    assert (space["N_CIRCLES"].low, space["N_CIRCLES"].high) == (26, 26)
    assert space["INNER_COUNT"].high > space["INNER_COUNT"].low
    # and `constants` never spends a proposal on it
    import numpy as np

    from archive import Program
    from operators.base import Context
    from operators.mutate_constants import MutateConstants

    seed = Program(id="s", source=target.seed_source(), fidelity="default")
    ctx = Context(seed_source=seed.source, ranges=dict(target.ranges))
    op, rng = MutateConstants(), np.random.default_rng(0)
    notes = [op.propose([seed], ctx, rng).description for _ in range(40)]
    assert not any("N_CIRCLES" in n for n in notes)
