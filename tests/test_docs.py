"""The numbers in docs/REPRODUCTION.md and README.md come from committed result files: every decimal number on
the page must equal, to the decimals shown, a number in the generated reports, summaries, CSVs,
benchmark results, model cards, training configs or the benchmark configs (which hold the papers'
published rows)."""

import bisect
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: constants quoted from the papers or from definitions rather than measured here
QUOTED = {
    "15.97": "the largest SD a uint8 image can have under the legacy toolbox rule",
    "0.190632": "CLF-Net Table VII's parameter count (M)",
    "127.5": "the authors' mapping of tanh's output to 0-255 (x 127.5 + 127.5)",
}


def _committed_numbers() -> list[float]:
    patterns = ["docs/**/summary.json", "docs/**/*.csv", "docs/**/report.md", "docs/benchmark/*.json",
                "configs/**/*.yaml", "benchmarks/results/*.json", "benchmarks/*.yaml", "contrafuse/weights/*.md"]
    values = set()
    for pattern in patterns:
        for path in REPO.glob(pattern):
            values.update(float(m) for m in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", path.read_text()))
    return sorted(values)


def _unsourced(document: str, quoted: dict) -> list[str]:
    """Decimal numbers in ``document`` matching (to the decimals shown) no committed number."""
    values = _committed_numbers()

    def committed(token: str) -> bool:
        half = 0.5 * 10 ** -len(token.split(".")[1]) + 1e-12
        i = bisect.bisect_left(values, float(token) - half)
        return i < len(values) and values[i] <= float(token) + half

    text = (REPO / document).read_text()
    return [t for t in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text) if t not in quoted and not committed(t)]


def test_reproduction_numbers_come_from_committed_files():
    unsourced = _unsourced("docs/REPRODUCTION.md", QUOTED)
    assert not unsourced, f"numbers in docs/REPRODUCTION.md found in no committed result file: {unsourced}"


#: README decimals that are definitions or references, not measurements
README_QUOTED = {"0.5": "the percentile rule's lower bound", "99.5": "the percentile rule's upper bound",
                 "3.4": "a section number of the CoCoNet paper", "0.04": "the order of SF on 0..1 (legacy)"}


def test_readme_numbers_come_from_committed_files():
    unsourced = _unsourced("README.md", README_QUOTED)
    assert not unsourced, f"numbers in README.md found in no committed result file: {unsourced}"


def test_generated_blocks_are_current():
    """README's model table and REPRODUCTION.md's peer tables are rendered from the specs and the
    results files (benchmarks/render_docs.py): a changed source without a re-render fails here."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "render_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
