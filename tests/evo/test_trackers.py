"""The experiment trackers get every evaluation, a resumed run goes on in the same tracker
run without a step twice, and a tracker that is missing or fails never stops the search.

Everything is read back with the trackers' own readers: TensorBoard's EventAccumulator, and
W&B's offline run files (its protobuf records) with ``WANDB_MODE=offline``.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from evo.trackers import IDS_FILE, flat_config, open_trackers

CONFIG = {"run": {"target": "tinygpt", "evaluations": 6}, "log": {"tensorboard": True}}


def values(i: int, **extra) -> dict:
    """What the loop logs after evaluation ``i``."""
    row = {
        "metric": 2.0 - i / 10,
        "best": 2.0 - i / 10,
        "coverage": i / 100,
        "qd_score": float(i),
        "elites": i,
        "operator": "tpe",
        "status": "ok",
        "cost": 0.0,
    }
    return {**row, **extra}


def log_cfg(tensorboard: bool = False, wandb: str = "", mlflow: str = "") -> dict:
    return {"tensorboard": tensorboard, "wandb": wandb, "mlflow": mlflow}


def open_run(run_dir: Path, cfg: dict, resume_step: int = 0):
    return open_trackers(cfg, run_dir, run_name="demo", config=CONFIG, resume_step=resume_step)


def tensorboard_events(log_dir: Path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs `pip install tensorboard`")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]


def texts(acc, tag: str) -> list[tuple[int, str]]:
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)]


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B in offline mode with every file of its own under ``tmp_path``."""
    wandb = pytest.importorskip("wandb", reason="W&B logging needs `pip install wandb`")
    for var, sub in [
        ("WANDB_DIR", "wandb"),
        ("WANDB_CONFIG_DIR", "wandb_config"),
        ("WANDB_CACHE_DIR", "wandb_cache"),
        ("WANDB_DATA_DIR", "wandb_data"),
    ]:
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.teardown()  # settings are read once per process: start from this environment
    yield tmp_path / "wandb"
    wandb.teardown()


def wandb_records(path: Path):
    """The protobuf records of an offline run's ``.wandb`` file: a 7-byte header, then
    LevelDB-log chunks (4-byte checksum, 2-byte length, 1-byte kind) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def wandb_offline_runs(wandb_dir: Path) -> list[dict]:
    """Each offline run dir's run id, config and history rows, oldest first."""
    runs = []
    for run_file in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb")):
        run = {"history": []}
        for record in wandb_records(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["id"] = record.run.run_id
                run["project"] = record.run.project
                run["config"] = {
                    item.key: json.loads(item.value_json) for item in record.run.config.update
                }
            elif kind == "history":
                row = {(i.key or "/".join(i.nested_key)): i.value_json for i in record.history.item}
                run["history"].append({k: json.loads(v) for k, v in row.items()})
        runs.append(run)
    return runs


def test_no_tracker_turned_on_costs_nothing(tmp_path):
    trackers = open_run(tmp_path, log_cfg())
    assert trackers.names == ()
    trackers.log_evaluation(1, values(1))
    assert trackers.flush() is True
    trackers.close()
    assert trackers.warnings == [] and list(tmp_path.iterdir()) == []


def test_tensorboard_gets_every_evaluation_and_a_resume_shows_no_step_twice(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs `pip install tensorboard`")
    # The first process logs four evaluations but dies before the run dir kept the fourth.
    with open_run(tmp_path, log_cfg(tensorboard=True)) as trackers:
        assert trackers.names == ("tensorboard",)
        for i in range(1, 5):
            extra = {"metric": None, "status": "crash"} if i == 2 else {}
            trackers.log_evaluation(i, values(i, **extra))
    assert trackers.warnings == []
    acc = tensorboard_events(tmp_path / "tensorboard")
    assert [s for s, _ in scalars(acc, "evo/best")] == [1, 2, 3, 4]
    assert [s for s, _ in scalars(acc, "evo/metric")] == [1, 3, 4]  # the crash has none
    assert texts(acc, "evo/outcome/text_summary")[1] == (2, "operator: tpe, status: crash")
    assert "run.target = tinygpt" in texts(acc, "config/text_summary")[0][1]

    # The resumed process starts after the 3 evaluations the run dir holds.
    with open_run(tmp_path, log_cfg(tensorboard=True), resume_step=3) as trackers:
        trackers.log_evaluation(3, values(3))  # already logged: skipped
        for i in range(4, 7):
            trackers.log_evaluation(i, values(i, cost=1.5))
    assert trackers.warnings == []
    acc = tensorboard_events(tmp_path / "tensorboard")
    assert [s for s, _ in scalars(acc, "evo/best")] == [1, 2, 3, 4, 5, 6]
    assert scalars(acc, "evo/cost") == [(1, 0), (2, 0), (3, 0), (4, 1.5), (5, 1.5), (6, 1.5)]
    assert scalars(acc, "evo/elites")[-1] == (6, 6.0)
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_wandb_offline_run_is_resumed_under_the_same_id(tmp_path, wandb_offline):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open_run(run_dir, log_cfg(wandb="evo-test")) as trackers:
        for i in range(1, 4):
            trackers.log_evaluation(i, values(i))
    assert trackers.warnings == []
    ids = json.loads((run_dir / IDS_FILE).read_text())
    assert ids["wandb"]["project"] == "evo-test"

    with open_run(run_dir, log_cfg(wandb="evo-test"), resume_step=3) as trackers:
        trackers.log_evaluation(2, values(2))  # already logged: skipped
        trackers.log_evaluation(4, values(4, operator="merge", status="timeout", metric=None))
    assert trackers.warnings == []
    assert json.loads((run_dir / IDS_FILE).read_text()) == ids

    first, second = wandb_offline_runs(wandb_offline)
    assert first["id"] == second["id"] == ids["wandb"]["id"]
    assert first["project"] == "evo-test" and first["config"]["run"]["evaluations"] == 6
    assert [row["evo/evaluation"] for row in first["history"]] == [1, 2, 3]
    assert [row["evo/best"] for row in first["history"]] == [1.9, 1.8, 1.7]
    (row,) = second["history"]
    assert row["evo/evaluation"] == 4 and "evo/metric" not in row
    assert (row["evo/operator"], row["evo/status"], row["evo/coverage"]) == (
        "merge",
        "timeout",
        0.04,
    )


MISSING = [
    ("tensorboard", log_cfg(tensorboard=True), ["tensorboard", "torch.utils.tensorboard"]),
    ("wandb", log_cfg(wandb="evo-test"), ["wandb"]),
    ("mlflow", log_cfg(mlflow="file:./mlruns"), ["mlflow"]),
]


@pytest.mark.parametrize("name, cfg, modules", MISSING, ids=[m[0] for m in MISSING])
def test_a_missing_package_is_one_warning_and_the_other_trackers_go_on(
    tmp_path, monkeypatch, name, cfg, modules
):
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs `pip install tensorboard`")
    for module in modules:  # `import module` now raises ImportError, as when not installed
        monkeypatch.setitem(sys.modules, module, None)
    with_tb = name != "tensorboard"
    with open_run(tmp_path, {**cfg, "tensorboard": True} if with_tb else cfg) as trackers:
        for i in range(1, 4):
            trackers.log_evaluation(i, values(i))
        trackers.flush()
        assert trackers.names == (("tensorboard",) if with_tb else ())
    (warning,) = trackers.warnings
    assert warning.startswith(
        {"tensorboard": "TensorBoard", "wandb": "W&B", "mlflow": "MLflow"}[name]
    )
    assert "not installed" in warning and f"pip install {name}" in warning
    assert trackers.new_warnings() == [warning] and trackers.new_warnings() == []
    if with_tb:
        acc = tensorboard_events(tmp_path / "tensorboard")
        assert [s for s, _ in scalars(acc, "evo/best")] == [1, 2, 3]


def test_a_tracker_that_cannot_start_is_turned_off_with_one_warning(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs `pip install tensorboard`")
    (tmp_path / "tensorboard").write_text("a file where the log folder should be\n")
    with open_run(tmp_path, log_cfg(tensorboard=True)) as trackers:
        for i in range(1, 4):
            trackers.log_evaluation(i, values(i))
        trackers.flush()
        assert trackers.names == ()
    (warning,) = trackers.warnings
    assert warning.startswith("TensorBoard: turned off after an error (start): ")
    assert "RUN_DIR/tensorboard" in warning and "\n" not in warning


def test_wandb_without_credentials_is_turned_off_without_asking(
    tmp_path, wandb_offline, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open_run(run_dir, log_cfg(wandb="evo-test")) as trackers:
        trackers.log_evaluation(1, values(1))
    (warning,) = trackers.warnings
    assert warning.startswith("W&B: turned off after an error (start): ")
    assert "no W&B credentials" in warning and "WANDB_MODE=offline" in warning


def test_a_tracker_that_raises_mid_run_is_turned_off_and_the_others_go_on(tmp_path, wandb_offline):
    import wandb

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open_run(run_dir, log_cfg(tensorboard=True, wandb="evo-test")) as trackers:
        for i in (1, 2):
            trackers.log_evaluation(i, values(i))
        assert trackers.flush() and trackers.names == ("tensorboard", "wandb")
        wandb.teardown()  # the W&B service goes away under the run
        for i in (3, 4):
            trackers.log_evaluation(i, values(i))
        trackers.flush()
        assert trackers.names == ("tensorboard",)
    (warning,) = trackers.warnings
    assert warning.startswith("W&B: turned off after an error (evaluation 3): ")
    assert warning.endswith("the search goes on without it")
    acc = tensorboard_events(run_dir / "tensorboard")
    assert [s for s, _ in scalars(acc, "evo/best")] == [1, 2, 3, 4]


def test_the_config_is_flattened_to_dotted_keys():
    flat = flat_config({"run": {"target": "t", "hours": 0.0, "pass_env": ["A"]}, "llm": {}})
    assert flat == {"run.target": "t", "run.hours": "0.0", "run.pass_env": '["A"]'}


def test_mlflow_run_is_resumed_under_the_same_id(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow logging needs `pip install mlflow`")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the URI is relative to the working dir, as a user writes it
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = log_cfg(mlflow="file:./mlruns")
    with open_run(run_dir, cfg) as trackers:
        for i in range(1, 4):
            trackers.log_evaluation(i, values(i))
    assert trackers.warnings == []
    ids = json.loads((run_dir / IDS_FILE).read_text())["mlflow"]
    with open_run(run_dir, cfg, resume_step=3) as trackers:
        trackers.log_evaluation(3, values(3))  # already logged: skipped
        trackers.log_evaluation(4, values(4, metric=None, status="crash"))
    assert trackers.warnings == []
    assert json.loads((run_dir / IDS_FILE).read_text())["mlflow"] == ids

    client = MlflowClient(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    (run,) = client.search_runs([client.get_experiment_by_name("evo").experiment_id])
    assert run.info.run_id == ids["run_id"] and run.info.status == "FINISHED"
    assert run.info.run_name == "demo" and run.data.params["run.evaluations"] == "6"
    best = client.get_metric_history(run.info.run_id, "evo/best")
    assert [(m.step, round(m.value, 6)) for m in best] == [(1, 1.9), (2, 1.8), (3, 1.7), (4, 1.6)]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "evo/metric")] == [1, 2, 3]


def test_a_search_logs_every_evaluation_to_tensorboard_and_a_resume_goes_on(tmp_path):
    """Through the real loop: each finished evaluation of the search's level is one step."""
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs `pip install tensorboard`")
    import evo
    from archive import RunStore
    from tests.evo.loop_helpers import quadratic_target, search_config

    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    for budget in (6, 9):  # the second run resumes the first
        evo.Search(
            search_config(target, run_dir, budget, log={"tensorboard": True}), progress=False
        ).run()
    acc = tensorboard_events(run_dir / "tensorboard")
    steps = [s for s, _ in scalars(acc, "evo/best")]
    finished = sum(p.status != "pending" for p in RunStore.read(run_dir).programs.values())
    assert steps == sorted(set(steps)) and len(steps) == finished  # no step twice, none lost
    assert steps[-1] <= 9
    best = [v for _, v in scalars(acc, "evo/best")]
    assert all(b <= a + 1e-12 for a, b in zip(best, best[1:], strict=False))  # never worse
