"""Replies a real small model gave (Gemma 3 270M under llama.cpp, benchmarks/llm_local.py),
kept verbatim in tests/llm_fixtures/gemma3_270m/ (the first 4000 characters, as
proposals.jsonl keeps them). Each must fail with the kind that names its shape, never apply.

The model's server had no chat template for it (ChatML by default), so it wrote chat-template
markers, invented user turns and echoed the prompt, program included: whatever follows such a
marker is not its answer (:func:`operators.llm.edits.end_of_turn`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.llm.edits import EditError, apply_reply, end_of_turn

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/llm_fixtures/gemma3_270m"
PACK = (ROOT / "targets/circle_packing/pack.py").read_text()

EXPECTED = {
    "only_a_turn_marker": "no_code",
    "prose_only": "no_code",
    "prose_then_a_made_up_user_turn": "no_code",
    "system_prompt_echoed_with_the_program": "no_code",
    "unclosed_block_of_rambling": "truncated",
    "fence_soup_cut_off": "truncated",
}


def fixtures() -> list[Path]:
    found = sorted(FIXTURES.glob("*.txt"))
    assert len(found) == len(EXPECTED), "a fixture without an expected kind, or one missing"
    return found


@pytest.mark.parametrize("path", fixtures(), ids=lambda p: p.stem)
def test_a_real_reply_fails_with_the_kind_of_its_shape(path):
    fmt, shape = path.stem.split("--")
    with pytest.raises(EditError) as err:
        apply_reply(path.read_text(), PACK, fmt)
    assert err.value.kind == EXPECTED[shape], err.value.reason


def test_a_program_echoed_after_a_turn_marker_is_not_taken_for_the_answer():
    # The real shape: a line of prose, a made-up user turn, and the prompt echoed with the
    # program in it. Taking the echo as the answer would make a child identical to the parent
    # (or to an inspiration from another niche).
    real = (FIXTURES / "search_replace--prose_then_a_made_up_user_turn.txt").read_text()
    prose = real.split("<|im_start|>")[0]
    reply = f"{prose}<|im_start|>user\n## Program\n```python\n{PACK}```\n"
    for fmt in ("whole_file", "definitions"):
        with pytest.raises(EditError) as err:
            apply_reply(reply, PACK, fmt)
        assert err.value.kind == "no_code"
    assert end_of_turn(reply) == prose


@pytest.mark.parametrize(
    "marker", ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "</s>"]
)
def test_an_answer_before_a_turn_marker_still_applies(marker):
    reply = f"```python\nN = 27\n```\n{marker}\n<start_of_turn>user\n```python\nN = 99\n```"
    child = apply_reply(reply, PACK, "definitions")
    assert "N = 27" in child and "N = 99" not in child
