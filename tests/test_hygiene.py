"""Notebook hygiene: every notebook follows the course skeleton, is committed stripped, links only to files
that exist, and hard-codes no model, port or absolute path (those come from llmkit at run time).

The skeleton (COURSE.md, "Style"): an H1 first, "What you will learn" under it, a Summary and Exercises
near the end, and a last code cell that stops what the notebook started.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNELS = {"llmkit-vllm", "llmkit-sglang"}

# What a code cell must not spell out: each pattern with the reason shown when it matches.
HARD_CODED = [
    (r"\b(Qwen|meta-llama|mistralai|deepseek-ai|google|microsoft|TinyLlama|HuggingFaceTB|facebook|"
     r"openai-community|EleutherAI|tiiuae|bigscience)/[\w.-]+", "a hub model id: use default_model()"),
    (r"tiny-poet-v\d|\.cache/llmkit", "the tiny-poet folder: use default_model()"),
    (r"(?<![\w./])/(root|home|tmp|work|usr|opt|mnt|data|var|etc|Users)/", "an absolute path"),
    (r"\b(localhost|127\.0\.0\.1|0\.0\.0\.0):\d+", "a fixed port: take it from the server handle (.url)"),
    (r"\bport\s*=\s*\d+|--port[= ]+\d+", "a fixed port: let llmkit reserve a free one"),
]


def load(path: Path) -> dict:
    """A notebook as JSON, each cell's source joined into ``text``."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["text"] = "".join(cell["source"])
    return nb


def code_cells(nb: dict) -> list[dict]:
    """The code cells of a notebook."""
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def markdown(nb: dict) -> str:
    """All markdown of a notebook, as one text."""
    return "\n\n".join(c["text"] for c in nb["cells"] if c["cell_type"] == "markdown")


def relative_links(text: str) -> list[str]:
    """Targets of markdown links ``[..](target)`` that point at files here (not URLs, not #anchors)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]


def test_notebooks_are_numbered_one_concept_each():
    """`NN_name.ipynb`, each number once."""
    assert NOTEBOOKS, "no notebooks found"
    numbers = []
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: name it NN_name.ipynb"
        numbers.append(path.name[:2])
    assert len(numbers) == len(set(numbers)), f"a number is used twice: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_skeleton(path):
    """H1 first with "What you will learn"; Summary and Exercises headings; the last code cell cleans up."""
    nb = load(path)
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and re.match(r"# \S", first["text"]), "the first cell is an H1"
    assert first["text"].startswith(f"# {path.name[:2]} "), "the H1 starts with the notebook's number"
    assert "What you will learn" in first["text"], "the first cell says what you will learn"
    text = markdown(nb)
    assert re.search(r"^#{2,3} Summary\b", text, re.M), "a Summary heading"
    assert re.search(r"^#{2,3} Exercises\b", text, re.M), "an Exercises heading"
    assert text.index("Summary") < text.rindex("Exercises"), "Summary comes before Exercises"
    last = code_cells(nb)[-1]["text"]
    assert re.search(r"close_llm\(|\.stop\(\)|\.shutdown\(\)|cleanup", last, re.I), \
        f"the last code cell stops what the notebook started:\n{last}"
    assert nb["metadata"].get("kernelspec", {}).get("name") in KERNELS, "the notebook names a course kernel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_stripped(path):
    """No outputs, no execution counts, no saved widget state: tests run the notebooks, git keeps the source."""
    nb = load(path)
    for i, cell in enumerate(code_cells(nb)):
        assert cell.get("outputs") == [], f"code cell {i} has outputs"
        assert cell.get("execution_count") is None, f"code cell {i} has an execution count"
    assert "widgets" not in nb["metadata"], "saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_hard_coded_models_ports_or_paths(path):
    """Models come from default_model(), ports from the server handles, paths from llmkit."""
    problems = []
    for i, cell in enumerate(code_cells(load(path))):
        for pattern, why in HARD_CODED:
            for match in re.finditer(pattern, cell["text"]):
                problems.append(f"code cell {i}: {match.group(0)!r} is {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_links_between_notebooks_resolve(path):
    """Every relative link in a notebook's markdown points at a file that exists."""
    missing = [t for t in relative_links(markdown(load(path))) if not (path.parent / t).exists()]
    assert not missing, f"{path.name} links to missing files: {missing}"


def test_readme_links_resolve_and_map_every_notebook():
    """README links point at files that exist, and the course map links every notebook."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = relative_links(readme)
    missing = [t for t in links if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
    unmapped = [p.name for p in NOTEBOOKS if f"notebooks/{p.name}" not in links]
    assert not unmapped, f"README's course map does not link {unmapped}"


def test_nbstripout_hook_is_configured_and_agrees():
    """.pre-commit-config.yaml runs nbstripout (the version requirements/course.txt pins), which finds
    nothing to strip in the committed notebooks."""
    config = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert "repo: https://github.com/kynan/nbstripout" in config and "id: nbstripout" in config
    pinned = re.search(r"^nbstripout==(\S+)", (ROOT / "requirements" / "course.txt").read_text(), re.M)
    assert pinned and re.search(rf"rev: {re.escape(pinned.group(1))}\b", config), "hook rev = the pinned nbstripout"
    exe = shutil.which("nbstripout", path=str(ROOT / ".venv" / "bin")) or shutil.which("nbstripout")
    if exe is None:
        pytest.skip("nbstripout is not installed (scripts/setup.sh installs it)")
    result = subprocess.run([exe, "--verify", "--keep-id", *map(str, NOTEBOOKS)], capture_output=True, text=True)
    assert result.returncode == 0, f"nbstripout would change:\n{result.stdout}{result.stderr}"
