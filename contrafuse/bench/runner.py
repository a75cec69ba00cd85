"""``contrafuse benchmark CONFIG.yaml``: fuse datasets with many methods (cached), evaluate under
stated conventions, and write tables, CDF curves, bar charts, visual grids, a complexity table and
misalignment results.

Config (YAML)::

    datasets: [tno, roadscene, {name: vifb, suite: vifb, methods: [...]}]  # suites; optional own methods
    # or your own folders, paired by base name: {name: mine, ir_dir: data/ir, vis_dir: data/vis}
    methods:                                                      # registered or external
      - coconet
      - {name: gff, options: {r1: 45}}
      - {name: theirs, fused_dir: results/theirs}                  # someone else's fused images, by base name
      - {name: SeAFusion, external: ../shared/datasets/VIFB_calib/fused, pattern: "{image}_SeAFusion.jpg"}
    metrics: [EN, SD, SF, AG, SCD, VIFF]
    conventions: [legacy, standard]
    grids: {images: [TNO_001], box: [0.4, 0.4, 0.18, 0.18], include_sources: false}
    complexity: {flops_size: [64, 64], runtime_size: [480, 640]}
    misalignment: {datasets: [tno], seed: 0}
    x-shared: &shared [gff, dwt]                                   # x-*: ignored, for YAML anchors
    paper: {tno: {"CoCoNet (Table 1)": {EN: "7.776 ± 0.081", ...}}}   # published rows shown beside ours
    paper_note: "..."                                              # a line printed under the published rows

Outputs go to ``-o OUTDIR`` (default ``runs/benchmark/<config name>``).
"""

from __future__ import annotations

import inspect
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ..progress import bar as tqdm  # drawn on a terminal only, not with --quiet

from ..api import fuse_images, load_pair
from ..errors import ContrafuseError
from ..io import list_images, write_csv_atomic, write_image, write_text_atomic
from ..methods import METHODS, create_method
from ..metrics import DEFAULT_METRICS, METRICS, conventions_used, evaluate_conventions, summarise
from ..fingerprint import fingerprint
from .config import load_benchmark_config
from .suites import suite_pairs
from .timing import git_state, machine_info, write_result


@dataclass
class MethodSpec:
    label: str
    name: str
    options: dict = field(default_factory=dict)
    external: Path | None = None
    pattern: str | None = "{image}.png"  # None: any image file named by the pair's base name

    def fingerprint(self) -> str:
        """Changes whenever the method, its options, its weights or its code change (cache key)."""
        parts = [self.name, json.dumps(self.options, sort_keys=True)]
        if self.external is None:
            cls = METHODS.get(self.name)
            parts += method_code(cls)
            spec = getattr(cls, "spec", None)
            if spec is not None:
                from ..precision import resolve_precision  # the arithmetic "auto" resolves to here
                parts.append(f"inference={self.options.get('inference', spec.default_protocol)}")
                parts.append(f"precision={resolve_precision(self.options.get('precision', 'auto'), 'cpu')}")
                if "weights" in self.options:
                    parts.append(Path(self.options["weights"]))
                elif spec.weights.packaged:
                    from ..weights import PACKAGE_WEIGHTS
                    parts.append(PACKAGE_WEIGHTS / spec.weights.file)
                else:  # official weights are verified against this hash before use
                    parts.append(spec.weights.sha256)
        return fingerprint(parts)


def method_code(cls) -> list[Path]:
    """The source files a method's results depend on: its class hierarchy's modules, the reading,
    colour and writing code, and for learned methods the networks, tiling and precision code."""
    package = Path(__file__).resolve().parents[1]
    files = {Path(inspect.getsourcefile(c)).resolve() for c in cls.__mro__ if c.__module__.startswith("contrafuse.")}
    files |= {package / "api.py", package / "io.py"}
    if getattr(cls, "spec", None) is not None:
        from ..nn import source_files
        files |= {*source_files(cls.spec.network), cls.spec.source_file, package / "models" / "__init__.py",
                  *(package / "methods" / name for name in ("tiling.py", "tiles.py", "staged.py")),
                  package / "precision.py"}
    return sorted(files)


def parse_methods(entries, base: Path) -> list[MethodSpec]:
    specs = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"name": entry}
        name = entry["name"]
        external = entry.get("external") or entry.get("fused_dir")
        if external is None and name not in METHODS:
            raise ContrafuseError(None, f"unknown method {name!r} in benchmark config")
        specs.append(MethodSpec(label=entry.get("label", name), name=name, options=entry.get("options", {}),
                                external=(base / external).resolve() if external else None,
                                pattern=None if "fused_dir" in entry else entry.get("pattern", "{image}.png")))
    return specs


def produce_fused(spec: MethodSpec, dataset: str, pairs, out: Path) -> dict[str, Path]:
    """Fused image path per pair name; runs the method only where the cached image is missing or
    the method's fingerprint changed."""
    if spec.external is not None:
        if spec.pattern is None:
            found = list_images(spec.external)
            paths = {p.name: found.get(p.name, spec.external / f"{p.name}.*") for p in pairs}
        else:
            paths = {p.name: spec.external / spec.pattern.format(image=p.name) for p in pairs}
        missing = [n for n, path in paths.items() if not path.exists()]
        if missing:
            raise ContrafuseError(spec.external, f"external method {spec.label}: no fused image for {', '.join(missing)}")
        return paths
    folder = out / "fused" / dataset / spec.label
    stamp = folder / ".fingerprint"
    fingerprint = spec.fingerprint()
    if stamp.exists() and stamp.read_text() != fingerprint:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    method = None
    paths = {}
    for pair in pairs:
        path = folder / f"{pair.name}.png"
        if not path.exists():
            method = method or create_method(spec.name, **spec.options)
            first, second = load_pair(pair)
            write_image(path, fuse_images(first, second, method), overwrite=True)
        paths[pair.name] = path
    return paths


def rank_table(means: dict[str, dict[str, float]], metrics) -> dict[str, float]:
    """Average rank of each method over the metrics (1 = best), respecting each metric's direction."""
    ranks = {m: [] for m in means}
    for metric in metrics:
        better_high = METRICS[metric].higher_is_better
        ordered = sorted(means, key=lambda m: means[m][metric], reverse=better_high)
        for position, method in enumerate(ordered, start=1):
            ranks[method].append(position)
    return {m: float(np.mean(r)) for m, r in ranks.items()}


def summary_markdown(title, means, stds, metrics, convention, used) -> str:
    ranks = rank_table(means, metrics)
    lines = [f"### {title} — `{convention}` convention", "",
             "| method | " + " | ".join(metrics) + " | avg rank |", "|---" * (len(metrics) + 2) + "|"]
    best = {}
    for metric in metrics:
        ordered = sorted(means, key=lambda m: means[m][metric], reverse=METRICS[metric].higher_is_better)
        best[metric] = ordered[:2]
    for method in means:
        cells = []
        for metric in metrics:
            text = f"{means[method][metric]:.4g} ± {stds[method][metric]:.2g}"
            if best[metric][0] == method:
                text = f"**{text}**"
            elif len(best[metric]) > 1 and best[metric][1] == method:
                text = f"_{text}_"
            cells.append(text)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {ranks[method]:.2f} |")
    fallback = sorted(m for m, c in used.items() if c != convention)
    lines += ["", "Bold: best, italics: second best. " + ("Computed as `standard`: " + ", ".join(fallback) + "."
                                                         if fallback else ""), ""]
    return "\n".join(lines)


def fuse_stage(specs: list[MethodSpec], label: str, pairs, out: Path) -> dict[str, dict[str, Path]]:
    """Stage 1: each method's fused image per pair (cached under ``out/fused``; external results as found)."""
    return {spec.label: produce_fused(spec, label, pairs, out)
            for spec in tqdm(specs, desc=f"{label}: fusing", unit="method")}


def evaluate_stage(specs: list[MethodSpec], pairs, fused: dict, metrics, conventions, label: str) -> dict:
    """Stage 2: per convention, the per-image metric rows and each method's mean and standard
    deviation. All conventions are evaluated together per triple (``evaluate_conventions``), so
    intermediates and the definitions they share are computed once."""
    conventions = list(conventions)
    out = {c: ([], {}, {}) for c in conventions}
    for spec in tqdm(specs, desc=f"{label}: evaluating ({', '.join(conventions)})", unit="method"):
        per_method = {c: [] for c in conventions}
        for pair in pairs:  # read again per method: a few ms beside the metrics' seconds, and no pixels held
            values = evaluate_conventions(*load_pair(pair), fused[spec.label][pair.name],
                                          metrics=metrics, conventions=conventions)
            for convention in conventions:
                per_method[convention].append({"image": pair.name, **values[convention]})
                out[convention][0].append({"image": pair.name, "method": spec.label, **values[convention]})
        for convention in conventions:
            rows, means, stds = out[convention]
            means[spec.label], stds[spec.label] = summarise(per_method[convention], metrics)
    return out


def write_tables(folder: Path, convention: str, rows, means, stds, metrics) -> None:
    """The per-image and summary CSVs of one dataset and convention (atomically)."""
    write_csv_atomic(folder / f"per_image_{convention}.csv", rows, ["image", "method", *metrics])
    ranks = rank_table(means, metrics)
    write_csv_atomic(folder / f"summary_{convention}.csv", [
        {"method": method, **{f"{m}_mean": means[method][m] for m in metrics},
         **{f"{m}_std": stds[method][m] for m in metrics}, "avg_rank": ranks[method]} for method in means])


def published_section(published: dict, note: str | None) -> list[str]:
    """The papers' own rows for a dataset, as given in the config, under ours."""
    columns = list(dict.fromkeys(k for row in published.values() for k in row))
    lines = ["### Published values (the papers' own images and evaluation code)", "",
             "| paper | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(str(row.get(c, "–")) for c in columns) + " |" for name, row in published.items()]
    return lines + [""] + ([note.strip(), ""] if note else [])


def grids_section(specs, pairs, fused: dict, folder: Path, label: str, grid_cfg: dict, quick: bool) -> list[str]:
    """Visual comparison grids of the configured images (the first pair if none is configured)."""
    from . import plots

    names = {p.name for p in pairs}
    wanted = [n for n in grid_cfg.get("images", []) if n in names] or [pairs[0].name]
    lines = []
    for image in wanted[: (1 if quick else None)]:
        pair = next(p for p in pairs if p.name == image)
        plots.comparison_grid(pair, {s.label: fused[s.label][image] for s in specs}, folder / f"grid_{image}.png",
                              box=grid_cfg.get("box", [0.4, 0.4, 0.18, 0.18]),
                              include_sources=grid_cfg.get("include_sources", False))
        lines += [f"![{image}]({label}/grid_{image}.png)", ""]
    return lines


def run_benchmark(config_path, out_dir=None, quick: bool = False) -> Path:
    """Fuse (stage 1), evaluate (stage 2) and report (stage 3) every dataset of a config; then the
    complexity table and the misalignment study when configured. Every file is written atomically."""
    from . import plots
    from .complexity import complexity_table
    from .misalign import misalignment_study

    config_path = Path(config_path)
    cfg = load_benchmark_config(config_path)
    base = config_path.parent
    out = Path(out_dir or Path("runs") / "benchmark" / config_path.stem)
    out.mkdir(parents=True, exist_ok=True)
    all_specs = parse_methods(cfg.get("methods", ["gff", "laplacian"]), base)[: (2 if quick else None)]
    metrics = cfg.get("metrics", list(DEFAULT_METRICS))
    report = [f"# Benchmark `{config_path.stem}`", "",
              (f"Generated by `contrafuse benchmark {config_path.as_posix()}`{' --quick' if quick else ''}; "
               "every number below was computed by the committed code on this machine:"), "",
              f"`{json.dumps({**machine_info(), 'git': git_state()})}`", ""]
    summary_json = {}
    for entry in cfg.get("datasets", ["tno"]):
        label = entry if isinstance(entry, str) else entry.get("name", entry.get("dataset", "dataset"))
        pairs = suite_pairs(entry if isinstance(entry, str) else entry.get("suite", entry))[: (2 if quick else None)]
        specs = all_specs
        if isinstance(entry, dict) and "methods" in entry:
            specs = parse_methods(entry["methods"], base)[: (2 if quick else None)]
        report += [f"## {label}", "", f"{len(pairs)} pairs: {', '.join(p.name for p in pairs)}", ""]
        fused = fuse_stage(specs, label, pairs, out)
        folder = out / label
        folder.mkdir(exist_ok=True)
        conventions = cfg.get("conventions", ["standard"])
        evaluated = evaluate_stage(specs, pairs, fused, metrics, conventions, label)
        for convention in conventions:
            used = conventions_used(metrics, convention)
            rows, means, stds = evaluated[convention]
            write_tables(folder, convention, rows, means, stds, metrics)
            report.append(summary_markdown(f"{label} ({len(pairs)} pairs)", means, stds, metrics, convention, used))
            plots.cdf_curves(rows, metrics, folder / f"cdf_{convention}.png", f"{label}, {convention}")
            plots.bar_chart(means, stds, metrics, folder / f"bars_{convention}.png", f"{label}, {convention}")
            report += [f"![CDF curves]({label}/cdf_{convention}.png)", "", f"![bars]({label}/bars_{convention}.png)", ""]
            summary_json[f"{label}/{convention}"] = {"mean": means, "std": stds, "definitions": used}
        if cfg.get("paper", {}).get(label):
            report += published_section(cfg["paper"][label], cfg.get("paper_note"))
        report += grids_section(specs, pairs, fused, folder, label, cfg.get("grids", {}), quick)
    if "complexity" in cfg:
        report.append(complexity_table(all_specs, cfg["complexity"], out / "complexity.json", quick=quick))
    if "misalignment" in cfg and not quick:
        report.append(misalignment_study(all_specs, cfg["misalignment"], metrics, out / "misalignment"))
    write_result(out / "summary.json", summary_json)
    write_text_atomic(out / "report.md", "\n".join(report) + "\n")
    return out
