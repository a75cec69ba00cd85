"""How much of each TNO training pair the automatic infrared mask covers, and which 18 pairs
``mask_pairs: 18`` fine-tunes on (the paper's "merely 18 images with salient masks", Sec. 4.1.2).

    python benchmarks/mask_coverage.py

Writes benchmarks/results/mask_coverage.json: per pair the masked share of the image (percent),
the chosen 18 and the range of each group.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from contrafuse.bench.timing import write_result
    from contrafuse.data.datasets import load_grey_pair, load_split
    from contrafuse.data.masks import infrared_mask
    from contrafuse.train.recipes import most_masked

    pairs = load_split("tno")["train"]
    groups = []
    for pair in pairs:
        first, second = load_grey_pair(pair)
        groups.append([first, second, infrared_mask(first)])
    chosen, _ = most_masked(pairs, groups, 18, "tno")
    chosen_names = {p.name for p in chosen}
    coverage = {p.name: round(100 * float(g[-1].mean()), 2) for p, g in zip(pairs, groups)}
    inside = [v for k, v in coverage.items() if k in chosen_names]
    outside = [v for k, v in coverage.items() if k not in chosen_names]
    write_result(HERE / "results" / "mask_coverage.json", {
        "what": "share of each TNO training pair's automatic infrared mask (percent); mask_pairs: 18 keeps the 18 largest",
        "coverage_percent": dict(sorted(coverage.items(), key=lambda kv: -kv[1])),
        "chosen": sorted(chosen_names),
        "chosen_range_percent": [min(inside), max(inside)],
        "others_range_percent": [min(outside), max(outside)],
    })


if __name__ == "__main__":
    main()
