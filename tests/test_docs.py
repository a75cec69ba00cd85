"""The docs quote their numbers from the results files: benchmarks/render_docs.py renders every
table and every bound number of README.md, docs/REPRODUCTION.md and the model cards from its source
file and key. These tests fail when a rendered part is out of date or edited by hand, and when a
page carries a decimal number with no source."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPRODUCTION = REPO / "docs" / "REPRODUCTION.md"
BLOCK = re.compile(r"<!-- generated:([\w-]+)[^>\n]*-->\n.*?<!-- /generated:\1 -->", re.S)
VALUE = re.compile(r"<!-- value:[^>]*-->[^<\n]*<!-- /value -->")

#: decimals that are constants of a definition, a setting or a check, not measurements
UNBOUND = {
    "docs/REPRODUCTION.md": {
        "15.97": "the largest SD a uint8 image can have under the toolbox's rule",
        "0.5": "the zoo acceptance check's limit in grey levels",
    },
    "README.md": {
        "0.5": "the percentile rule's lower bound", "99.5": "the percentile rule's upper bound",
        "1.2": "CONTRAFUSE_TILE_MEMORY's default in GB", "0.04": "the order of SF under `legacy`",
    },
}


@pytest.fixture(scope="module")
def render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", REPO / "benchmarks" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_blocks_are_current():
    """Every generated block and bound value equals what its source gives now: a changed results
    file without a re-render (`python benchmarks/render_docs.py`) fails here."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "render_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("where", [r"\| ours, `coconet` \| ", r"<!-- value:[^>]*-->"], ids=["table", "value"])
def test_check_fails_when_a_quoted_number_is_edited(tmp_path, capsys, render_docs, where):
    """One digit changed in a copy of REPRODUCTION.md, in a paper table's row or in a bound value:
    --check fails on the copy and names the line, where the unchanged copy passes."""
    text = REPRODUCTION.read_text()
    copy = tmp_path / "REPRODUCTION.md"
    copy.write_text(text)
    assert render_docs.main(["--check", str(copy)]) == 0
    digit = re.compile(where + r"[^0-9]*").search(text).end()
    assert text[digit].isdigit()
    copy.write_text(text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:])
    assert render_docs.main(["--check", str(copy)]) == 1
    assert f"line {text[:digit].count(chr(10)) + 1}:" in capsys.readouterr().out


@pytest.mark.parametrize("document", sorted(UNBOUND))
def test_no_unbound_decimal_numbers(document):
    """Outside generated blocks and bound values a page carries no decimal number but the
    allow-listed constants (section numbers such as "Sec. 4.7" are not numbers)."""
    text = VALUE.sub("", BLOCK.sub("", (REPO / document).read_text()))
    text = re.sub(r"Sec\. \d+(\.\d+)+", "", text)
    found = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text)) - set(UNBOUND[document])
    assert not found, f"{document}: decimal numbers bound to no results file: {sorted(found)}"


def test_reproduction_tables_are_all_generated():
    """docs/REPRODUCTION.md keeps no hand-made table: every table row lies in a generated block."""
    rows = [line for line in BLOCK.sub("", REPRODUCTION.read_text()).splitlines() if line.startswith("|")]
    assert not rows, rows[:3]


def test_ci_runs_the_readme_commands():
    """.ci/run runs what the README's two commands do: each step of the first (install, fuse a real
    pair) and the second (the tests), flags that only quieten or allow a rerun aside."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Two commands"):]
    first, second = re.findall(r"```bash\n(.+?)\n```", section, re.S)[:2]
    ci = [re.sub(r" --(quiet|overwrite)\b", "", line) for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith("#")]
    steps = first.split(" && ") + [second]
    assert len(steps) == 4
    for step in steps:
        assert step in ci, f"README step not run by .ci/run: {step}"
