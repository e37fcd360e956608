"""The tinygpt harness in-process: its data split, budgets and the causality guard's reach."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import torch.nn as nn
from targets_testkit import TARGETS


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("tinygpt_harness", TARGETS / "tinygpt/harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def corpus(tmp_path):
    files = []
    for i in range(3):
        path = tmp_path / f"text{i}.txt"
        path.write_bytes(bytes(range(32, 127)) * (300 + 20 * i))
        files.append(path)
    return files


@pytest.fixture
def env(monkeypatch, tmp_path, corpus):
    """A small harness configuration on a private corpus; the result goes to tmp_path."""
    values = {
        "EVO_RESULT": str(tmp_path / "result.json"),
        "EVO_SEED": "3",
        "EVO_DEVICE": "cpu",
        "TINYGPT_DATA": ":".join(map(str, corpus[:1])),
        "TINYGPT_EVAL_SEQ_LEN": "16",
        "TINYGPT_VAL_TOKENS": "256",
        "TINYGPT_BUDGET_TOKENS": "2048",
    }
    for key in ("TINYGPT_BUDGET_SECONDS", "TINYGPT_SCALE", "TINYGPT_DATA_BYTES"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return tmp_path / "result.json"


class Bigram(nn.Module):
    """Causal by construction: logits at t depend on token t only."""

    def __init__(self, mix_batch: bool = False):
        super().__init__()
        self.table = nn.Embedding(256, 256)
        self.mix_batch = mix_batch

    def forward(self, idx):
        logits = self.table(idx)
        if self.mix_batch:  # leaks across rows, where the next validation chunk sits
            logits = logits + 0.1 * logits.mean(dim=0, keepdim=True)
        return logits


def train(run, model, steps=None):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    n = 0
    while (not run.done()) if steps is None else n < steps:
        x, y = run.next_batch(4, 32)
        loss = nn.functional.cross_entropy(model(x).view(-1, 256), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        run.step_done(loss)
        n += 1


def test_single_named_file_splits_its_last_tenth_for_validation(harness, env, corpus):
    train_bytes, val_bytes, sha = harness.load_corpus(10**9)
    text = corpus[0].read_bytes()
    assert train_bytes + val_bytes == text and len(val_bytes) == len(text) // 10
    assert harness.load_corpus(10**9)[2] == sha  # deterministic


def test_several_files_split_by_file(harness, env, monkeypatch, corpus, tmp_path):
    more = [tmp_path / f"more{i}.txt" for i in range(9)]
    for i, path in enumerate(more):
        path.write_bytes(f"file {i}\n".encode() * 1000)
    monkeypatch.setenv("TINYGPT_DATA", ":".join(map(str, corpus + more)))
    train_bytes, val_bytes, _ = harness.load_corpus(10**9)
    sixth = (corpus + more)[5].read_bytes()  # every tenth file, offset 5, is validation
    assert val_bytes == sixth and sixth not in train_bytes


def test_missing_data_file_is_a_clear_error(harness, env, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGPT_DATA", str(tmp_path / "nope.txt"))
    with pytest.raises(harness.HarnessError, match="nope.txt"):
        harness.load_corpus(1000)


def test_fixed_tokens_budget_writes_a_result(harness, env):
    run = harness.setup()
    model = Bigram()
    run.begin(model)
    train(run, model)
    summary = run.finish(model)
    assert summary["train_tokens"] == 2048 and summary["steps"] == 16
    assert summary["val_bpb"] < summary["val_bpb_init"]
    assert json.loads(env.read_text())["val_bpb"] == summary["val_bpb"]


def test_fixed_seconds_budget_excludes_warmup_steps(harness, env, monkeypatch):
    monkeypatch.delenv("TINYGPT_BUDGET_TOKENS")
    monkeypatch.setenv("TINYGPT_BUDGET_SECONDS", "0.3")
    monkeypatch.setenv("TINYGPT_WARMUP_STEPS", "3")
    run = harness.setup()
    model = Bigram()
    run.begin(model)
    train(run, model, steps=3)
    assert run.progress() == 0.0  # the warm-up steps are not timed
    train(run, model)
    summary = run.finish(model)
    assert summary["train_seconds"] >= 0.3 and summary["steps"] > 3


def test_training_past_the_budget_is_rejected(harness, env):
    run = harness.setup()
    model = Bigram()
    run.begin(model)
    train(run, model, steps=20)  # the budget is 16 steps of 4 x 32 tokens
    with pytest.raises(SystemExit):
        run.finish(model)
    result = json.loads(env.read_text())
    assert result["status"] == "invalid_result" and "after the budget" in result["reason"]


def test_model_mixing_batch_rows_is_rejected(harness, env):
    run = harness.setup()
    with pytest.raises(SystemExit):
        run.begin(Bigram(mix_batch=True))
    result = json.loads(env.read_text())
    assert result["status"] == "invalid_result" and "not causal" in result["reason"]


def test_wrong_logits_shape_is_rejected(harness, env):
    class Short(Bigram):
        def forward(self, idx):
            return super().forward(idx)[:, :-1]

    run = harness.setup()
    with pytest.raises(SystemExit):
        run.begin(Short())
    assert "logits of shape" in json.loads(env.read_text())["reason"]


def test_bad_budget_env_exits_with_status_2(harness, env, monkeypatch):
    monkeypatch.setenv("TINYGPT_BUDGET_SECONDS", "10")  # together with TINYGPT_BUDGET_TOKENS
    with pytest.raises(SystemExit) as exc:
        harness.setup()
    assert exc.value.code == 2
