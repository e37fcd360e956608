"""Inputs real users have: EVOLVE-BLOCK markers checked when a target loads, and evolving files
with a byte-order mark, a PEP 263 encoding or CRLF line endings kept as they are, through the
evaluator's working dir and ``evo best``; every bad input is one line and exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archive import Dim, Program, RunStore
from evo.cli import main
from evo.evaluation import evaluate_program
from evo.target import TargetError, load_target
from operators import Context, canonical_hash

START, END = "# EVOLVE-BLOCK-START", "# EVOLVE-BLOCK-END"

EVALUATOR = "def evaluate(program_path):\n    return {'combined_score': 1.0}\n"


def _openevolve(tmp_path: Path, seed: bytes | str, name: str = "oe") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    data = seed.encode() if isinstance(seed, str) else seed
    (folder / "initial_program.py").write_bytes(data)
    (folder / "evaluator.py").write_text(EVALUATOR)
    return folder


def _toml_target(tmp_path: Path, seed: bytes, block: bool = False, name: str = "t") -> Path:
    """A target whose program reports its own score, and what Python made of its file."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "prog.py").write_bytes(seed)
    (folder / "target.toml").write_text(
        f'evolve = "prog.py"\nmetric = "score"\nblock = {str(block).lower()}\ntimeout = 20\n'
    )
    return folder


def test_marker_words_only_in_a_docstring_evolve_the_whole_openevolve_file(tmp_path):
    seed = '"""Put code between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END."""\nX = 1\n'
    t = load_target(_openevolve(tmp_path, seed))
    assert t.block is False  # as OpenEvolve runs it: no marker comment, no block


BAD_MARKERS = {
    "start without end": (
        f"FIXED = 3  # fixed by the problem\n{START}\nRATE = 0.5\n",
        "line 2 has no EVOLVE-BLOCK-END",
    ),
    "end before start": (f"{END}\nRATE = 0.5\n{START}\n", "line 1 comes before"),
    "two blocks": (
        f"{START}\nA = 1\n{END}\nB = 2\n{START}\nC = 3\n{END}\n",
        "a second EVOLVE-BLOCK-START at line 5",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MARKERS))
def test_bad_markers_are_a_one_line_error_when_the_target_loads(case, tmp_path):
    seed, message = BAD_MARKERS[case]
    folder = _openevolve(tmp_path, seed)
    with pytest.raises(TargetError, match=message) as e:
        load_target(folder)
    assert str(e.value).startswith(f"{folder / 'initial_program.py'}: ")
    assert "\n" not in str(e.value)
    # target.toml with block = true: the same rules, and the key is named
    toml = _toml_target(tmp_path, seed.encode(), block=True)
    with pytest.raises(TargetError, match=f"{message}.*target.toml sets block = true"):
        load_target(toml)
    # block = false: the markers are comments, the whole file evolves
    assert load_target(_toml_target(tmp_path, seed.encode(), name="plain")).block is False


def test_block_true_without_markers_names_the_key(tmp_path):
    with pytest.raises(TargetError, match="key 'block' is true but prog.py has no EVOLVE-BLOCK"):
        load_target(_toml_target(tmp_path, b"RATE = 0.5\n", block=True))


LATIN1_CRLF = (
    '# -*- coding: latin-1 -*-\r\nimport json, os\r\nNAME = "café"\r\nRATE = 0.5\r\n'
    'raw = open(__file__, "rb").read()\r\n'
    "json.dump({'score': RATE, 'cafe': float(NAME == 'caf\\u00e9'),\r\n"
    "           'crlf': float(raw.count(b'\\r\\n') == raw.count(b'\\n')), 'bom': float(raw[:3] == b'\\xef\\xbb\\xbf')},\r\n"
    "          open(os.environ['EVO_RESULT'], 'w'))\r\n"
).encode("latin-1")
BOM_UTF8 = b"\xef\xbb\xbf" + LATIN1_CRLF.decode("latin-1").replace(
    "# -*- coding: latin-1 -*-", "# a UTF-8 file with a byte-order mark"
).replace("\r\n", "\n").encode("utf-8")
FORMS = {"latin-1, CRLF": (LATIN1_CRLF, 1.0, 0.0), "UTF-8 with a BOM, LF": (BOM_UTF8, 0.0, 1.0)}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_children_are_written_as_the_user_wrote_the_seed(form, tmp_path):
    data, crlf, bom = FORMS[form]
    t = load_target(_toml_target(tmp_path, data))
    seed = t.seed_source()
    assert "\r" not in seed and not seed.startswith("\ufeff") and 'NAME = "café"' in seed
    assert t.file_bytes(seed) == data  # the seed comes back byte for byte
    child = seed.replace("RATE = 0.5", "RATE = 0.25")
    assert canonical_hash(child) != canonical_hash(seed)
    r = evaluate_program(t, child, workdir=tmp_path / "w")
    assert r.status == "ok", r.reason + r.stderr_tail
    assert r.metrics == {"score": 0.25, "cafe": 1.0, "crlf": crlf, "bom": bom}
    assert (tmp_path / "w" / "prog.py").read_bytes() == data.replace(b"0.5", b"0.25")
    # a character the declared encoding cannot hold: the child fails, the run does not
    euro = seed.replace("RATE = 0.5", 'RATE = 0.5\nSIGN = "€"')
    r = evaluate_program(t, euro, workdir=tmp_path / "x")
    if form.startswith("latin-1"):
        assert r.status == "invalid_result" and "U+20AC" in r.reason and "line 5" in r.reason
    else:
        assert r.status == "ok"


def test_the_model_is_shown_the_decoded_text(tmp_path):
    from operators.llm import LLMConfig, mutation_messages

    t = load_target(_toml_target(tmp_path, LATIN1_CRLF))
    seed = t.seed_source()
    parent = Program(id=canonical_hash(seed), source=seed, fidelity="default")
    messages = mutation_messages(parent, Context(seed_source=seed), LLMConfig.from_dict({}))
    text = "".join(m["content"] for m in messages)
    assert 'NAME = "café"' in text and "\r" not in text


UNREADABLE = {
    "undecodable byte": (b'X = 1\nNAME = "caf\xe9"\n', r"byte 0xe9 at offset 17 \(line 2\)"),
    "unknown encoding": (b"# coding: klingon\nX = 1\n", "unknown encoding: klingon"),
    "lone start marker": (f"X = 1\n{START}\nY = 2\n".encode(), "line 2 has no EVOLVE-BLOCK-END"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_evo_run_reports_a_bad_seed_in_one_line_and_exits_2(case, tmp_path, capsys):
    data, message = UNREADABLE[case]
    folder = _openevolve(tmp_path, data)
    run_dir = tmp_path / "run"
    argv = ["run", str(folder), "--run-dir", str(run_dir), "--evaluations", "1"]
    assert main([*argv, "--timeout", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evo run: error: ")
    assert f"{folder / 'initial_program.py'}: " in err[0]
    assert re.search(message, err[0]), err[0]
    assert not run_dir.exists()


def _store_with_best(run_dir: Path, target: Path, best: Program) -> None:
    """A real run dir whose one ok program is ``best``."""
    store = RunStore.create(
        run_dir,
        dims=[Dim(name="region", kind="category", categories=("a",))],
        direction="maximize",
        meta={"fidelity": best.fidelity, "target_root": str(target), "seed_id": best.id},
    )
    best.descriptors = {"region": "a"}
    best.fitness = 1.0
    store.add(best)
    store.close()


def test_evo_best_writes_the_file_the_program_ran_as(tmp_path, capsysbinary):
    folder = _toml_target(tmp_path, LATIN1_CRLF)
    child = load_target(folder).seed_source().replace("RATE = 0.5", "RATE = 0.25")
    best = Program(id=canonical_hash(child), source=child, fidelity="default", status="ok")
    _store_with_best(tmp_path / "run", folder, best)
    assert main(["best", str(tmp_path / "run")]) == 0
    assert capsysbinary.readouterr().out == LATIN1_CRLF.replace(b"0.5", b"0.25")
    # without the target folder: the encoding the program declares, LF line endings
    _store_with_best(tmp_path / "run2", tmp_path / "gone", best)
    assert main(["best", str(tmp_path / "run2")]) == 0
    assert capsysbinary.readouterr().out == child.encode("latin-1")


def test_evo_seed_reads_a_variant_as_python_does(tmp_path, capsys):
    folder = _toml_target(tmp_path, LATIN1_CRLF)
    variant = tmp_path / "variant.py"
    variant.write_bytes(LATIN1_CRLF.replace(b"0.5", b"0.75"))
    run_dir = tmp_path / "run"
    assert main(["seed", str(run_dir), str(variant), "--target", str(folder)]) == 0
    assert "variant.py: added" in capsys.readouterr().out
    hand = [p for p in RunStore.read(run_dir).programs.values() if p.operator == "hand"]
    assert len(hand) == 1 and "RATE = 0.75" in hand[0].source
