"""llmkit.exercises: every exercise a notebook lists has a checker cell, a hidden solution, and a checker that
passes right answers and gives a hint (never the solution) for wrong ones.

The cases live beside their checkers (``llmkit/exercises/nbNN.py``, ``cases()``); this file runs them. Answers
are built from vLLM's own result classes, real SGLang replies (the recorded capture), the real tiny-poet
tokenizer, and, where a checker asks the engine for the expected answer, a real vLLM engine. The hidden
solution cells compute their answers with a live engine and ``assert check(...)``, so the nbval run of each
notebook proves its solutions pass too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmkit.exercises import EXERCISES, MODULES, Verdict, check, evaluate

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CASES = [(module.__name__.rsplit(".", 1)[1], i, case) for module in MODULES for i, case in enumerate(module.cases())]


@pytest.fixture(scope="session")
def sglang_capture():
    """Replies recorded from a real SGLang 0.5.17 server (tests/fixtures/sglang, see test_sglang_capture.py)."""
    return json.loads((ROOT / "tests" / "fixtures" / "sglang" / "sglang_capture.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tokenizer(tiny_poet_dir):
    """tiny-poet's real tokenizer, with its chat template."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_poet_dir))


def solution_text(value) -> str | None:
    """The text a hint must not contain for a scalar solution (None where that makes no sense)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()


def resolve(case, request) -> tuple[object, dict]:
    """The case's answer and context, with the fixtures it names filled in."""
    fixtures = {}
    for spec in case.fixtures:
        key, _, name = spec.partition("=")
        fixtures[key] = request.getfixturevalue(name or key)
    if callable(case.answer):
        answer, extra = case.answer(fixtures)
        return answer, {**case.context, **extra}
    return case.answer, {**case.context, **fixtures}


@pytest.mark.parametrize("module,index,case", CASES, ids=[f"{c.exercise}-{i}" for _, i, c in CASES])
def test_checker_case(module, index, case, request):
    """Each right answer passes with an explanation; each wrong one gets a hint that does not give it away."""
    answer, context = resolve(case, request)
    verdict = evaluate(case.exercise, answer, **context)
    expected = "pass" if case.passes else "hint"
    assert verdict.status == expected, f"{case.exercise}: {answer!r} should {expected}: {verdict.message}"
    if case.says:
        assert case.says in verdict.message, verdict.message
    if case.passes:
        assert len(verdict.message) > 20, "a pass says why"
        return
    rights = [c.answer for m in MODULES if m.__name__.endswith(module) for c in m.cases()
              if c.exercise == case.exercise and c.passes and not callable(c.answer)]
    for s in {s for s in map(solution_text, rights) if s and len(s) > 1}:
        given_away = re.search(rf"(?<![\d.]){re.escape(s)}(?![\d])", verdict.message)
        assert not given_away, f"{case.exercise}: the hint for {answer!r} gives away {s!r}: {verdict.message}"


def test_every_checker_has_right_and_wrong_cases():
    """A new checker needs answers that pass and answers that get a hint, beside it in its module."""
    passing = {c.exercise for _, _, c in CASES if c.passes}
    hinted = {c.exercise for _, _, c in CASES if not c.passes}
    assert set(EXERCISES) == passing == hinted


@pytest.mark.parametrize("eid", sorted(EXERCISES))
def test_placeholder_none_is_not_answered_and_never_raises(eid, capsys):
    """The committed cells hold None: check says "not answered yet" and returns a false Verdict."""
    verdict = check(eid, None)
    assert isinstance(verdict, Verdict) and verdict.status == "unanswered" and not verdict
    assert "not answered yet" in capsys.readouterr().out
    odd = evaluate(eid, object())
    assert odd.status == "hint", "an answer of a surprising type gets a hint, not a traceback"


def test_quiet_check_prints_nothing(capsys):
    """Hidden solution cells use quiet=True, so "Run All" shows no answers."""
    assert check("00.1", "length", quiet=True) and capsys.readouterr().out == ""


def test_unknown_exercise_is_an_error():
    """A typo in an exercise id is the course's bug: it raises, listing the known ids."""
    with pytest.raises(KeyError, match="00.1"):
        check("99.9", 1)


# ------------------------------------------------------------------------------------ the notebooks
def cells(path: Path) -> list[dict]:
    """A notebook's cells, each with its source joined into one string."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [{**c, "text": "".join(c["source"])} for c in nb["cells"]]


def listed_exercises(path: Path) -> list[str]:
    """Ids ("NN.k") of the numbered items under a notebook's "## Exercises" heading."""
    number = path.name[:2]
    for cell in cells(path):
        if cell["cell_type"] == "markdown" and re.search(r"^## Exercises", cell["text"], re.M):
            section = re.split(r"^## Exercises.*$", cell["text"], flags=re.M)[1]
            section = re.split(r"<details>|^#{1,3} ", section, flags=re.M)[0]
            return [f"{number}.{k}" for k in re.findall(r"^(\d+)\. ", section, re.M)]
    return []


def is_solution(cell: dict) -> bool:
    """A hidden solution cell (tagged "solution")."""
    return cell["cell_type"] == "code" and "solution" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_checker_cell_and_a_hidden_solution(path):
    """Exercises listed ↔ check("NN.k", my_answer) cells ↔ `assert check("NN.k", ...)` in hidden solution cells."""
    listed = listed_exercises(path)
    assert listed, f"{path.name} lists no exercises"
    placeholders, solved = [], []
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        if is_solution(cell):
            solved += re.findall(r'assert check\("(\d\d\.\d+)"', cell["text"])
            assert cell["metadata"].get("jupyter", {}).get("source_hidden"), "solution cells start collapsed"
        elif ids := re.findall(r'check\("(\d\d\.\d+)"', cell["text"]):
            placeholders += ids
            assert re.search(r"^my_answer = None\b", cell["text"], re.M), f"{ids}: the placeholder must be None"
    assert placeholders == listed, f"{path.name}: checker cells {placeholders} vs exercises listed {listed}"
    assert sorted(solved) == listed, f"{path.name}: hidden solutions check {solved}, exercises are {listed}"
    missing = [eid for eid in listed if eid not in EXERCISES]
    assert not missing, f"no checker in llmkit.exercises for {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checker_cells_import_check_in_the_first_code_cell(path):
    """`check` comes from the first code cell's imports, like every other name the notebook uses."""
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    if any("check(" in c["text"] for c in code):
        assert "from llmkit.exercises import check" in code[0]["text"]
