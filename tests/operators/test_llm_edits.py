"""Applying replies to real seeds: definitions (with whitespace drift), methods, constants,
imports, SEARCH/REPLACE (all or nothing), whole files, and EVOLVE-BLOCK targets."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from operators.descriptors import edit_descriptors
from operators.errors import ValidationError
from operators.llm import EditError, apply_reply, parse_idea
from operators.validate import validate_child

ROOT = Path(__file__).resolve().parents[2]
TINYGPT = (ROOT / "targets/tinygpt/train.py").read_text()
PACK = (ROOT / "tests/llm_fixtures/pack.py").read_text()

NEW_SCHEDULE = '''
def lr_multiplier(progress):
    """Cosine decay to FINAL_LR_FRAC after a linear warmup."""
    if progress < WARMUP_FRAC:
        return progress / WARMUP_FRAC
    t = (progress - WARMUP_FRAC) / (1.0 - WARMUP_FRAC)
    return FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * 0.5 * (1.0 + math.cos(math.pi * t))
'''


def changed_lines(old: str, new: str) -> list[str]:
    return [
        ln
        for ln in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is the change.\n\n```{tag}\n{code.strip()}\n```\nIt should help.\n"


def test_a_function_is_swapped_in_at_its_node_and_nothing_else_moves():
    child = apply_reply(fenced("import math\n" + NEW_SCHEDULE), TINYGPT, "definitions")
    validate_child(child, TINYGPT, block=False)
    diff = changed_lines(TINYGPT, child)
    assert "+import math" in diff
    assert all(
        ln.startswith("+")
        or "WARMUP_FRAC" in ln
        or "WARMDOWN" in ln
        or "return" in ln
        or "left" in ln
        or "Linear warmup" in ln
        for ln in diff
    )
    # The region label above the def survives, so the edit lands in the 'schedule' niche.
    assert '# evo: region=schedule\ndef lr_multiplier(progress):\n    """Cosine' in child
    assert edit_descriptors(child, TINYGPT).regions == ("imports", "schedule")


def test_whitespace_drift_in_the_reply_still_applies():
    drifted = "\n".join(
        "    " + ln.replace("    ", "  ") + "   " for ln in NEW_SCHEDULE.strip().splitlines()
    )
    reply = "```python\n\n" + drifted.replace("\n", "\r\n") + "\n\n\n```"
    child = apply_reply(
        reply, TINYGPT.replace("import torch\n", "import math\nimport torch\n"), "definitions"
    )
    # libcst re-indents the new body with the program's own 4 spaces; line ends are \n.
    assert "\n    t = (progress - WARMUP_FRAC) / (1.0 - WARMUP_FRAC)\n" in child
    assert "\r" not in child and " \n" not in child
    compile(child, "train.py", "exec")
    assert child.count("def lr_multiplier") == 1


def test_constants_keep_their_comment_and_new_names_go_after_the_last_one():
    reply = fenced("LEARNING_RATE = 3e-3\nLABEL_SMOOTHING = 0.1  # new knob")
    child = apply_reply(reply, TINYGPT, "definitions")
    assert "LEARNING_RATE = 3e-3  # peak AdamW learning rate" in child
    lines = child.splitlines()
    assert lines[lines.index("LABEL_SMOOTHING = 0.1  # new knob") - 1].startswith("COMPILE = ")
    assert edit_descriptors(child, TINYGPT).constants == ("LABEL_SMOOTHING", "LEARNING_RATE")


def test_a_new_function_goes_after_the_last_definition():
    reply = fenced("def label_smooth(x, eps):\n    return x * (1 - eps)\n")
    child = apply_reply(reply, TINYGPT, "definitions")
    assert (
        child.index("def lr_multiplier") < child.index("def label_smooth") < child.index("DEPTH = ")
    )
    validate_child(child, TINYGPT, block=False)


def test_a_method_by_header_and_by_its_sole_owner():
    by_header = fenced(
        "# replaces: RMSNorm.forward\ndef forward(self, x):\n    return x * self.weight\n"
    )
    child = apply_reply(by_header, TINYGPT, "definitions")
    assert "    def forward(self, x):\n        return x * self.weight\n" in child
    assert "# replaces" not in child and child.count("class RMSNorm") == 1
    # `forward` is a method of several classes: without the header it is ambiguous.
    with pytest.raises(EditError, match="replaces: ClassName.forward"):
        apply_reply(fenced("def forward(self, x):\n    return x\n"), TINYGPT, "definitions")
    sole = fenced("def configure(self):\n    return 1\n")
    src = "class A:\n    def configure(self):\n        return 0\n\n\nclass B:\n    pass\n"
    assert "class A:\n    def configure(self):\n        return 1\n" in apply_reply(
        sole, src, "definitions"
    )


def test_the_main_guard_is_matched_by_its_header():
    src = "def main():\n    print(1)\n\n\nif __name__ == '__main__':\n    main()\n"
    reply = fenced('if __name__ == "__main__":\n    main()\n    main()\n')
    child = apply_reply(reply, src, "definitions")
    assert child.endswith("    main()\n    main()\n") and child.count("if __name__") == 1


@pytest.mark.parametrize(
    "reply, match",
    [
        ("I would use a cosine schedule.", "no ```python code block"),
        (fenced("print('hello')"), "not a whole definition"),
        (fenced("def f(:\n    pass"), "code block 1 is not valid Python"),
        (fenced("# replaces: Nope.forward\ndef forward(self):\n    pass"), "no top-level class"),
    ],
)
def test_unusable_definitions_replies_are_edit_errors(reply, match):
    with pytest.raises(EditError, match=match):
        apply_reply(reply, TINYGPT, "definitions")


def test_search_replace_applies_every_block_or_none():
    reply = (
        "<<<<<<< SEARCH\nLEARNING_RATE = 1e-3\n=======\nLEARNING_RATE = 2e-3\n"
        ">>>>>>> REPLACE\n\n<<<<<<< SEARCH\nGRAD_CLIP = 1.0\n=======\nGRAD_CLIP = 0.5\n"
        ">>>>>>> REPLACE\n"
    )
    child = apply_reply(reply, TINYGPT, "search_replace")
    assert changed_lines(TINYGPT, child) == [
        "-LEARNING_RATE = 1e-3  # peak AdamW learning rate",
        "+LEARNING_RATE = 2e-3  # peak AdamW learning rate",
        "-GRAD_CLIP = 1.0  # max global grad norm (0 disables clipping)",
        "+GRAD_CLIP = 0.5  # max global grad norm (0 disables clipping)",
    ]
    missing = reply.replace("GRAD_CLIP = 1.0\n=", "GRAD_CLIP = 7.0\n=")
    with pytest.raises(EditError) as err:
        apply_reply(missing, TINYGPT, "search_replace")
    assert "block 2" in err.value.reason and "matches nothing" in err.value.reason
    twice = "<<<<<<< SEARCH\nsuper().__init__()\n=======\npass\n>>>>>>> REPLACE\n"
    with pytest.raises(EditError, match="matches [0-9]+ places"):
        apply_reply(twice, TINYGPT, "search_replace")
    with pytest.raises(EditError, match="no <<<<<<< SEARCH"):
        apply_reply(fenced("LEARNING_RATE = 2e-3"), TINYGPT, "search_replace")


def test_whole_file_takes_the_longest_python_block():
    new = TINYGPT.replace("DEPTH = 2 ", "DEPTH = 3 ")
    reply = "```python\nx = 1\n```\nand the program:\n```python\n" + new + "```\n"
    assert apply_reply(reply, TINYGPT, "whole_file") == new
    with pytest.raises(EditError, match="no ```python"):
        apply_reply("no code", TINYGPT, "whole_file")


def test_block_target_edits_inside_the_block_and_rejects_outside():
    reply = fenced(
        "import math\nSPACING = 0.97\n\ndef jitter(c):\n    return c\n\n"
        "def construct_packing():\n    centers = jitter(grid_centers(N))\n"
        "    return centers, radii_for(centers)\n"
    )
    child = apply_reply(reply, PACK, "definitions", block=True)
    validate_child(child, PACK, block=True)
    assert (
        child.index("# EVOLVE-BLOCK-START")
        < child.index("import math")
        < child.index("def jitter")
        < child.index("# EVOLVE-BLOCK-END")
    )
    with pytest.raises(EditError, match="'main' is outside the EVOLVE-BLOCK"):
        apply_reply(fenced("def main():\n    pass\n"), PACK, "definitions", block=True)
    outside = "<<<<<<< SEARCH\nN = 26\n=======\nN = 30\n>>>>>>> REPLACE\n"
    with pytest.raises(ValidationError) as err:
        validate_child(apply_reply(outside, PACK, "search_replace"), PACK, block=True)
    assert err.value.kind == "outside_block"


def test_ideas_are_read_from_a_line_or_a_block():
    assert (
        parse_idea("IDEA: use a cosine schedule\n```python\nx = 1\n```") == "use a cosine schedule"
    )
    assert parse_idea("**Idea:** warm restarts\n") == "warm restarts"
    assert (
        parse_idea("```idea\nwider MLP,\nfewer layers\n```\n```python\nx=1\n```")
        == "wider MLP, fewer layers"
    )
    assert parse_idea("```python\n# IDEA: inside code does not count\n```") == ""


# ---- SEARCH/REPLACE matches whole lines: small programs of our own -------------------------

PROG = """\
LEN = 25  # sequence length
WIDTH = 64


class Net:
    def forward(self, x):
        y = x * 2
        return y + LEN

    def backward(self, g):
        y = g * 2
        return y
"""


def sr(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_search_with_trailing_spaces_the_program_lacks_still_applies():
    child = apply_reply(sr("WIDTH = 64   \t", "WIDTH = 128"), PROG, "search_replace")
    assert "WIDTH = 128\n" in child and "WIDTH = 64" not in child


def test_search_shifted_in_indentation_applies_and_the_replacement_is_reindented():
    # The model quoted the method's body without its 8 spaces and wrote the new body the same way.
    reply = sr(
        "def forward(self, x):\n    y = x * 2",
        "def forward(self, x):\n    y = x * 3\n    y = y - 1",
    )
    child = apply_reply(reply, PROG, "search_replace")
    assert (
        "    def forward(self, x):\n        y = x * 3\n        y = y - 1\n        return y + LEN"
        in child
    )
    compile(child, "child", "exec")  # the re-indented child is valid Python


def test_search_matching_only_the_middle_of_a_line_is_refused():
    with pytest.raises(EditError) as err:
        apply_reply(sr("LEN = 2", "LEN = 3"), PROG, "search_replace")
    assert err.value.kind == "partial" and "line 1" in err.value.reason
    with pytest.raises(EditError, match="part of line"):
        apply_reply(sr("x * 2", "x * 4"), PROG, "search_replace")


def test_search_matching_two_places_is_refused_even_after_an_indentation_shift():
    twin = (
        PROG + "\n\nclass Twin:\n    def forward(self, x):\n        y = x * 2\n        return y\n"
    )
    with pytest.raises(EditError) as err:
        apply_reply(sr("        y = x * 2", "        y = x * 5"), twin, "search_replace")
    assert err.value.kind == "ambiguous" and "matches 2 places" in err.value.reason
    shifted = sr("def forward(self, x):\n    y = x * 2", "def forward(self, x):\n    y = x * 5")
    with pytest.raises(EditError) as err:
        apply_reply(shifted, twin, "search_replace")
    assert err.value.kind == "ambiguous" and "once re-indented" in err.value.reason
    # One more line makes it unique, and it applies to the right class only.
    unique = sr("y = x * 2\nreturn y + LEN", "y = x * 5\nreturn y + LEN")
    child = apply_reply(unique, twin, "search_replace")
    assert child.count("y = x * 5") == 1 and child.index("y = x * 5") < child.index("class Twin")


def test_search_matching_nothing_names_the_block():
    reply = sr("WIDTH = 64", "WIDTH = 65") + sr("DEPTH = 3", "DEPTH = 4")
    with pytest.raises(EditError) as err:
        apply_reply(reply, PROG, "search_replace")
    assert err.value.kind == "no_match" and "block 2" in err.value.reason


def test_a_search_block_cut_off_is_truncated_not_ignored():
    reply = sr("WIDTH = 64", "WIDTH = 65") + "<<<<<<< SEARCH\nLEN = 25\n=======\n"
    with pytest.raises(EditError) as err:
        apply_reply(reply, PROG, "search_replace")
    assert err.value.kind == "truncated"


def test_definitions_given_twice_or_a_method_without_its_class_are_refused():
    twice = fenced("WIDTH = 32\nWIDTH = 48")
    with pytest.raises(EditError) as err:
        apply_reply(twice, PROG, "definitions")
    assert err.value.kind == "ambiguous" and "given twice" in err.value.reason
    orphan = fenced("def step(self, x):\n    return x")
    with pytest.raises(EditError) as err:
        apply_reply(orphan, PROG, "definitions")
    assert err.value.kind == "no_match" and "belongs to no class" in err.value.reason


def test_whole_file_cut_off_inside_its_block_is_truncated_and_bare_code_is_accepted():
    cut = "Here it is:\n```python\nLEN = 30\nWIDTH = 64\n\nclass Net:\n    def forw"
    with pytest.raises(EditError) as err:
        apply_reply(cut, PROG, "whole_file")
    assert err.value.kind == "truncated"
    bare = PROG.replace("WIDTH = 64", "WIDTH = 96")
    assert apply_reply(bare, PROG, "whole_file") == bare
    with pytest.raises(EditError) as err:
        apply_reply("Sure! I made the network wider.", PROG, "whole_file")
    assert err.value.kind == "no_code"
