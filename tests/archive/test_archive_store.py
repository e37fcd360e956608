"""RunStore on real files: journal replay, checkpoint round trips, readers, bad input."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import h5py
import pytest
from archive_testkit import DIMS, file_bytes, make_program, snapshot

from archive import SCHEMA_VERSION, EliteArchive, Program, RunStore, StoreError


def new_store(tmp_path: Path, **kw) -> RunStore:
    return RunStore.create(
        tmp_path / "run",
        dims=DIMS,
        direction="minimize",
        meta={"target": "tinygpt", "budget": 10},
        **kw,
    )


def add_many(store: RunStore, n: int, seed: int = 0, start: int = 0) -> None:
    """n records like a run makes them: pending, then finished, some re-measured."""
    rng = random.Random(seed)
    done: list[Program] = []
    for i in range(start, start + n):
        parents = tuple(rng.sample([p.id for p in done[-50:]], min(2, len(done))))
        p = make_program(
            i, rng=rng, parents=parents, fidelity=rng.choice(["tiny", "tiny", "small"])
        )
        if i % 10 == 0:
            store.add(
                Program.from_dict(
                    {
                        **p.to_dict(),
                        "status": "pending",
                        "fitness": None,
                        "runs": [],
                        "fitness_std": None,
                    }
                )
            )
        store.add(p)
        done.append(p)
        # Re-measure with more seeds: an elite turns out worse (the archive is rebuilt), or
        # any ok program turns out better.
        remeasure = []
        elites = store.elite_programs(p.fidelity)
        if i % 97 == 96 and elites:
            remeasure.append((rng.choice(elites), 0.5))
        oks = [q for q in done[-100:] if q.ok]
        if i % 89 == 88 and oks:
            remeasure.append((rng.choice(oks), -0.2))
        for old, delta in remeasure:
            store.add(Program.from_dict({**old.to_dict(), "fitness": old.fitness + delta}))


def test_create_writes_a_valid_empty_archive(tmp_path):
    with new_store(tmp_path) as s:
        assert (tmp_path / "run" / "lock").is_file()
        assert s.evaluations == 0 and s.best() is None and s.fidelities == []
    assert not (tmp_path / "run" / "lock").exists()  # close released it
    with h5py.File(tmp_path / "run" / "archive.h5", "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert json.loads(f.attrs["meta"]) == {"target": "tinygpt", "budget": 10}
        assert f["programs/source"].shape == (0,)
    r = RunStore.read(tmp_path / "run")
    assert r.meta["target"] == "tinygpt" and r.dims == DIMS and r.direction == "minimize"
    with pytest.raises(StoreError, match="already exists; .* holds a run"):
        new_store(tmp_path)


def test_journal_replay_without_a_checkpoint_restores_everything(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 300)
        before = snapshot(s)
    after = RunStore.read(tmp_path / "run")
    assert snapshot(after) == before
    assert after.evaluations == len([h for h in before["history"]]) > 300


def test_round_trip_of_10000_programs_through_checkpoint_and_reload(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 10_000)
        s.checkpoint()
        before = snapshot(s)
        births = s.next_birth()
    assert len(before["programs"]) == 10_000 and before["elites"]["tiny"]
    # After a checkpoint every record lives in archive.h5; the journal starts afresh.
    segments = sorted((tmp_path / "run" / "journal").iterdir())
    assert [p.stat().st_size for p in segments] == [0]
    again = RunStore.open(tmp_path / "run")
    assert snapshot(again) == before
    assert again.next_birth() == births
    again.close()
    with h5py.File(tmp_path / "run" / "archive.h5", "r") as f:
        src = f["programs/source"].asstr()[()]
        assert len(src) == 10_000 and src[5] == before["programs"][5][1]["source"]
        assert len(f["history/qd_score"]) == len(before["history"])
        assert set(f["elites/fidelity"].asstr()[()]) == {"tiny", "small"}


def test_a_checkpoint_written_before_the_lineage_column_reads_it_as_empty(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 30)
        s.checkpoint()
        before = snapshot(s)
    assert any(p["lineage"] for _, p in before["programs"])
    with h5py.File(tmp_path / "run" / "archive.h5", "a") as f:
        del f["programs/lineage"]  # as evo wrote it before the emitter
    again = RunStore.read(tmp_path / "run")
    assert [p.lineage for p in again.programs.values()] == [""] * len(before["programs"])
    assert [p.id for p in again.programs.values()] == [k[0] for k, _ in before["programs"]]


def test_replay_after_a_checkpoint_and_more_records(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 200, seed=1)
        s.checkpoint()
        add_many(s, 150, seed=2, start=200)
        s.checkpoint()
        add_many(s, 120, seed=3, start=350)
        before = snapshot(s)
    names = [p.name for p in sorted((tmp_path / "run" / "journal").iterdir())]
    assert names == ["00000003.jsonl"]  # segments held by the checkpoint are gone
    assert snapshot(RunStore.read(tmp_path / "run")) == before


def test_add_many_is_one_group_commit_equal_to_single_adds(tmp_path):
    ps = [make_program(i) for i in range(60)]
    with new_store(tmp_path) as s:
        singles = [s.add(p) for p in ps]
    with RunStore.create(tmp_path / "batch", dims=DIMS, direction="minimize", meta={}) as b:
        with pytest.raises(ValueError, match="status 'weird'"):
            b.add_many([ps[0], Program(id="x", source="", fidelity="tiny", status="weird")])
        assert b.journal_seq == 0  # a refused batch writes nothing
        assert b.add_many(ps) == singles
        seg = next((tmp_path / "batch" / "journal").iterdir())
        assert len(seg.read_bytes().splitlines()) == 60
        before = snapshot(b)
    assert snapshot(RunStore.read(tmp_path / "batch")) == before


def test_pending_programs_are_reported_for_requeue(tmp_path):
    with new_store(tmp_path) as s:
        a, b = make_program(1), make_program(2, status="ok")
        for p in (a, b):
            s.add(Program.from_dict({**p.to_dict(), "status": "pending", "fitness": None}))
        assert s.add(Program.from_dict({**a.to_dict(), "status": "pending"})) is None
        s.add(b)
        assert [p.id for p in s.pending()] == [a.id]
        assert s.counts_by_status() == {"pending": 1, "ok": 1}
        assert s.evaluations == 1  # a pending record is not an evaluation
    r = RunStore.read(tmp_path / "run")
    assert [p.id for p in r.pending()] == [a.id]


def test_re_measured_elite_is_lowered_and_history_records_each_evaluation(tmp_path):
    with new_store(tmp_path) as s:
        desc = {"depth": 3, "opt": "adam"}
        a = Program(id="a", source="a", fidelity="tiny", status="ok", fitness=1.0, descriptors=desc)
        b = Program(id="b", source="b", fidelity="tiny", status="ok", fitness=2.0, descriptors=desc)
        assert s.add(a).status == "new"
        assert s.add(b).status == "not_added"
        r = s.add(Program.from_dict({**a.to_dict(), "fitness": 3.0}))
        assert (r.status, r.previous) == ("not_added", "b")
        assert s.best("tiny").id == "b" and s.elites("tiny").elite_ids() == ["b"]
        assert s.add(Program.from_dict({**a.to_dict(), "fitness": 0.5})).status == "improved"
        assert s.best().id == "a"
        assert [(h.id, h.added, h.best) for h in s.history] == [
            ("a", "new", 1.0),
            ("b", "not_added", 1.0),
            ("a", "not_added", 2.0),
            ("a", "improved", 0.5),
        ]
        before = snapshot(s)
    assert snapshot(RunStore.read(tmp_path / "run")) == before


def test_the_journal_record_of_a_program_is_its_to_dict():
    from archive.store import program_dict

    for i in range(50):
        p = make_program(i)
        assert json.dumps(program_dict(p)) == json.dumps(p.to_dict())
        assert Program.from_dict(json.loads(json.dumps(program_dict(p)))) == p


def test_offspring_counts_count_distinct_children(tmp_path):
    with new_store(tmp_path) as s:
        s.add(make_program(1, status="ok"))
        child = make_program(2, parents=("p1", "p2"), fidelity="tiny")
        s.add(child)
        s.add(Program.from_dict({**child.to_dict(), "fidelity": "small"}))  # promoted
        s.add(make_program(3, parents=("p1",)))
        assert dict(s.offspring_counts()) == {"p1": 2, "p2": 1}
        with pytest.raises(TypeError):
            s.offspring_counts()["p1"] = 0  # a read-only view


def test_reader_never_locks_and_cannot_write(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 30)
        r = RunStore.read(tmp_path / "run")  # while the writer holds the lock
        assert snapshot(r) == snapshot(s)
        s.checkpoint()
        add_many(s, 5, start=30)
        assert RunStore.open(tmp_path / "run", writer=False).evaluations == s.evaluations
    with pytest.raises(StoreError, match="read-only"):
        r.add(make_program(99))
    with pytest.raises(StoreError, match="read-only"):
        r.checkpoint()


def test_torn_tail_is_ignored_by_readers_and_cut_by_the_writer(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 20)
        before = snapshot(s)
    seg = next((tmp_path / "run" / "journal").iterdir())
    good = seg.read_bytes()
    seg.write_bytes(good + b'{"seq": 99, "t": 1.0, "progr')  # a write cut short
    assert snapshot(RunStore.read(tmp_path / "run")) == before
    assert seg.read_bytes().endswith(b"progr")  # readers change nothing
    with RunStore.open(tmp_path / "run") as w:
        assert seg.read_bytes() == good
        w.add(make_program(500))
    assert RunStore.read(tmp_path / "run").evaluations == len(before["history"]) + 1


def test_non_ok_statuses_and_bad_records_are_refused(tmp_path):
    with new_store(tmp_path) as s:
        with pytest.raises(ValueError, match="status 'weird'"):
            s.add(Program(id="x", source="", fidelity="tiny", status="weird"))
        with pytest.raises(ValueError, match="fidelity"):
            s.add(Program(id="x", source="", fidelity="", status="ok"))
        with pytest.raises(TypeError):
            s.add(
                Program(
                    id="x",
                    source="",
                    fidelity="tiny",
                    status="ok",
                    fitness=1.0,
                    descriptors={"depth": object()},
                )
            )
        assert s.journal_seq == 0
    assert RunStore.read(tmp_path / "run").journal_seq == 0


def test_cvt_run_keeps_its_centroids_across_reloads(tmp_path):
    from archive import Dim

    dims = [Dim(name="emb", kind="cvt", bins=8, dimension=2, ranges=((0, 1), (0, 1)))]
    with RunStore.create(tmp_path / "run", dims=dims, direction="maximize", meta={}) as s:
        for i in range(20):
            s.add(
                Program(
                    id=f"p{i}",
                    source="",
                    fidelity="f",
                    status="ok",
                    fitness=float(i),
                    descriptors={"emb": [i / 20, (i * 7 % 20) / 20]},
                )
            )
        s.checkpoint()
        before = snapshot(s)
    r = RunStore.read(tmp_path / "run")
    assert snapshot(r) == before and (r.centroids() == s.centroids()).all()


# ---- bad input: a StoreError naming the file, and not one byte changed ----


def _corrupt_truncated(run: Path) -> None:
    data = (run / "archive.h5").read_bytes()
    (run / "archive.h5").write_bytes(data[: len(data) // 2])


def _corrupt_garbage(run: Path) -> None:
    (run / "archive.h5").write_bytes(bytes(random.Random(0).randrange(256) for _ in range(5000)))


def _corrupt_newer_schema(run: Path) -> None:
    with h5py.File(run / "archive.h5", "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1


def _corrupt_not_evo(run: Path) -> None:
    with h5py.File(run / "archive.h5", "w") as f:
        f["x"] = [1, 2, 3]


def _corrupt_missing_archive(run: Path) -> None:
    (run / "archive.h5").unlink()


def _corrupt_journal_middle(run: Path) -> None:
    seg = sorted((run / "journal").iterdir())[-1]
    lines = seg.read_bytes().split(b"\n")
    lines[3] = lines[3][:40] + b"#" + lines[3][41:]
    seg.write_bytes(b"\n".join(lines))


def _corrupt_journal_gap(run: Path) -> None:
    seg = sorted((run / "journal").iterdir())[-1]
    lines = seg.read_bytes().split(b"\n")
    del lines[2]
    seg.write_bytes(b"\n".join(lines))


def _corrupt_record_fields(run: Path) -> None:
    seg = sorted((run / "journal").iterdir())[-1]
    lines = seg.read_bytes().split(b"\n")
    rec = json.loads(lines[1])
    del rec["program"]["id"]
    lines[1] = json.dumps(rec).encode()
    seg.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (_corrupt_truncated, "archive.h5: (not a readable HDF5 file|damaged archive)"),
        (_corrupt_garbage, "archive.h5: not a readable HDF5 file"),
        (_corrupt_newer_schema, f"schema version {SCHEMA_VERSION + 1} is newer .*upgrade evo"),
        (_corrupt_not_evo, "archive.h5: not an evo archive"),
        (_corrupt_missing_archive, "archive.h5: missing; .* is not an evo run dir"),
        (_corrupt_journal_middle, r"00000002.jsonl: line 4 is corrupt .*not the torn tail"),
        (_corrupt_journal_gap, r"00000002.jsonl: line 3 has record .*missing"),
        (_corrupt_record_fields, r"run: damaged run \(TypeError.*restore archive.h5 and journal/"),
    ],
)
def test_bad_input_is_a_one_line_store_error_and_changes_nothing(tmp_path, corrupt, match):
    with new_store(tmp_path) as s:
        add_many(s, 40)
        s.checkpoint()
        add_many(s, 10, start=40)
    run = tmp_path / "run"
    corrupt(run)
    before = file_bytes(run)
    for opener in (
        lambda: RunStore.open(run),
        lambda: RunStore.read(run),
        lambda: RunStore.open(run, writer=False),
    ):
        with pytest.raises(StoreError, match=match) as err:
            opener()
        assert "\n" not in str(err.value) and str(run) in str(err.value)
        assert file_bytes(run) == before


def test_missing_run_dir_is_a_store_error(tmp_path):
    for opener in (RunStore.open, RunStore.read):
        with pytest.raises(StoreError, match="no such run dir; check the path"):
            opener(tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []


def test_a_journal_left_without_archive_is_not_silently_overwritten(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 5)
    (tmp_path / "run" / "archive.h5").unlink()
    with pytest.raises(StoreError, match="holds records but .* is missing"):
        new_store(tmp_path)


def test_elites_survive_a_copy_and_equal_a_full_rebuild(tmp_path):
    with new_store(tmp_path) as s:
        add_many(s, 600)  # six elites re-measured worse: six per-cell rebuilds
        s.checkpoint()
        before = snapshot(s)
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    copy = RunStore.read(tmp_path / "copy")
    assert snapshot(copy) == before
    fresh = EliteArchive(dims=DIMS, direction="minimize", qd_offset=copy.elites("tiny").qd_offset)
    fresh.rebuild(p for p in copy.programs.values() if p.fidelity == "tiny")
    assert list(fresh.cells()) == before["elites"]["tiny"]
