"""tinygpt end to end at the ``tiny`` fidelity: real training in a subprocess, and its guards."""

from __future__ import annotations

import math
import re

import pytest
from targets_testkit import TARGETS, run_target

from evo.target import load_target


@pytest.fixture(scope="module")
def target():
    return load_target(TARGETS / "tinygpt")


def test_tiny_trains_below_untrained_bpb(target, tmp_path):
    proc, result = run_target(target, tmp_path / "child", fidelity="tiny", seed=0)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "status" not in result, result
    assert math.isfinite(result["val_bpb"])
    # Uniform over 256 bytes is 8 bits per byte; an untrained model sits near it.
    assert 7.5 < result["val_bpb_init"] < 9.0
    assert result["val_bpb"] < 7.0
    assert result["val_bpb"] < result["val_bpb_init"] - 3.0
    assert result["train_tokens"] >= 300_000 and result["steps"] > 0
    assert result["params"] > 100_000 and result["tokens_per_s"] > 0
    assert result["peak_mem_mb"] > 0 and result["train_seconds"] > 0
    assert re.fullmatch(r"[0-9a-f]{64}", result["corpus_sha256"])
    assert result["fidelity"] == "tiny" and result["seed"] == 0
    for spec in target.descriptors:  # every declared descriptor is reported, inside its range
        assert spec.range[0] <= result[spec.name] <= spec.range[1]
    # The summary is printed as `key: value` lines.
    assert f"val_bpb: {result['val_bpb']}" in proc.stdout


def test_non_causal_attention_is_rejected(target, tmp_path):
    source = target.seed_source()
    assert source.count("is_causal=True") == 1
    proc, result = run_target(
        target, tmp_path / "child", source=source.replace("is_causal=True", "is_causal=False")
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["status"] == "invalid_result"
    assert "not causal" in result["reason"]


def test_huge_learning_rate_fails_fast_as_nan(target, tmp_path):
    source = target.seed_source()
    edited = re.sub(r"(?m)^LEARNING_RATE = .*$", "LEARNING_RATE = 1e6", source)
    assert edited != source
    proc, result = run_target(target, tmp_path / "child", source=edited)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["status"] == "nan"
    assert result["steps"] < 20  # fast fail, not a full run
