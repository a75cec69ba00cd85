"""`contrafuse benchmark --quick`: files exist, tables parse, numbers equal a direct evaluation."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, dataset

from contrafuse.api import load_pair
from contrafuse.bench.misalign import STRENGTHS, perturb
from contrafuse.bench.runner import rank_table
from contrafuse.bench.suites import SUITES, suite_pairs
from contrafuse.cli import main
from contrafuse.io import read_image
from contrafuse.metrics import evaluate


def test_quick_benchmark(tmp_path):
    dataset("TNO_CoCoNet")
    out = tmp_path / "bench"
    assert main(["benchmark", str(REPO / "benchmarks" / "quick.yaml"), "--quick", "-o", str(out)]) == 0
    for name in ("report.md", "summary.json", "complexity.json", "tno/grid_TNO_001.png"):
        assert (out / name).exists(), name
    for convention in ("legacy", "standard"):
        for kind in ("cdf", "bars"):
            assert (out / "tno" / f"{kind}_{convention}.png").stat().st_size > 1000
        rows = list(csv.DictReader((out / "tno" / f"per_image_{convention}.csv").open()))
        assert {r["method"] for r in rows} == {"gff", "laplacian"} and len(rows) == 4
        pairs = {p.name: p for p in suite_pairs("tno")[:2]}
        for row in rows:
            sources = [np.round(x * 255).astype(np.uint8) for x in load_pair(pairs[row["image"]])]
            fused = read_image(out / "fused" / "tno" / row["method"] / f"{row['image']}.png")
            direct = evaluate(*sources, fused, metrics=["EN", "SD", "VIFF"], convention=convention)
            for metric, value in direct.items():
                assert float(row[metric]) == pytest.approx(value, rel=1e-12)
        summary = list(csv.DictReader((out / "tno" / f"summary_{convention}.csv").open()))
        gff_sd = [float(r["SD"]) for r in rows if r["method"] == "gff"]
        assert float(next(s for s in summary if s["method"] == "gff")["SD_mean"]) == pytest.approx(np.mean(gff_sd))
    report = (out / "report.md").read_text()
    assert "| gff |" in report and "### Complexity" in report
    complexity = json.loads((out / "complexity.json").read_text())
    assert complexity["methods"]["gff"]["runtime_seconds"] > 0
    # a second run re-uses the cached fused images
    stamp = (out / "fused" / "tno" / "gff" / "TNO_001.png").stat().st_mtime_ns
    assert main(["benchmark", str(REPO / "benchmarks" / "quick.yaml"), "--quick", "-o", str(out)]) == 0
    assert (out / "fused" / "tno" / "gff" / "TNO_001.png").stat().st_mtime_ns == stamp


def test_rank_table_respects_direction():
    means = {"a": {"EN": 7.0, "RMSE": 10.0}, "b": {"EN": 6.0, "RMSE": 5.0}}
    assert rank_table(means, ["EN", "RMSE"]) == {"a": 1.5, "b": 1.5}
    assert rank_table(means, ["EN"]) == {"a": 1.0, "b": 2.0}


def test_saved_figures_are_opaque_rgb_with_matplotlibs_own_pixels(tmp_path):
    """save_figure re-encodes Matplotlib's RGBA rendering as RGB: same pixels, no alpha channel."""
    import io

    from PIL import Image

    from contrafuse.bench.plots import plt, save_figure

    def figure():
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.imshow(np.linspace(0, 1, 64).reshape(8, 8), cmap="gray")
        ax.set_title("panel")
        return fig

    reference = io.BytesIO()
    fig = figure()
    fig.savefig(reference, dpi=90, bbox_inches="tight", format="png")
    plt.close(fig)
    expected = np.asarray(Image.open(reference))
    assert expected.shape[2] == 4 and (expected[..., 3] == 255).all()

    save_figure(figure(), tmp_path / "figure.png")
    with Image.open(tmp_path / "figure.png") as written:
        assert written.mode == "RGB"
        assert np.array_equal(np.asarray(written), expected[..., :3])
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
    with pytest.raises(ValueError, match="must end in .png"):  # a PNG is never written under another name
        save_figure(figure(), tmp_path / "figure.svg")
    assert not (tmp_path / "figure.svg").exists()


def test_misalignment_is_seeded_and_grows_with_strength():
    from scipy import ndimage
    image = ndimage.gaussian_filter(np.random.default_rng(0).random((64, 80)), 4).astype(np.float32)
    moved = {k: perturb(image, s, np.random.default_rng(1)) for k, s in STRENGTHS.items()}
    again = perturb(image, STRENGTHS["moderate"], np.random.default_rng(1))
    assert np.array_equal(moved["moderate"], again)
    change = [np.abs(moved[k] - image).mean() for k in ("tiny", "moderate", "extreme")]
    assert change[0] < change[1] < change[2]


@pytest.mark.parametrize("text, fragment", [
    ("methods: 5\n", "methods must be list, not 5"),
    ("methods: [gff, {label: x}]\n", "missing required key methods[1].'name'"),
    ("methods: [{name: gff, options: {radius: 3}}]\n", None),  # checked when the method is made
    ("methods: [fancy]\n", "unknown method 'fancy'"),
    ("metrics: [EN, PSNRR]\n", "metrics[1] must be one of"),
    ("conventions: [matlab]\n", "conventions[0] must be one of standard, legacy, vifb"),
    ("datasets: [mars]\n", "unknown suite 'mars'"),
    ("datasets: [{name: x, every: 0, dataset: TNO}]\n", "datasets[0].every must be at least 1"),
    ("complexity: {runtime_size: [480]}\n", "complexity.runtime_size must be [height, width]"),
    ("grids: {box: [0.1, 0.1, 2, 0.1]}\n", "grids.box must be"),
    ("misalignment: {strengths: {huge: {}}}\n", "misalignment.strengths: 'huge' must be one of"),
    ("colour: yes\n", "unknown key 'colour'"),
    ("methods: [{name: x, fused_dir: a, recorded: b}]\n", "methods[0]: give one of 'fused_dir', 'recorded', not several"),
])
def test_benchmark_config_errors_name_the_key_and_file(tmp_path, text, fragment):
    from contrafuse.bench.config import load_benchmark_config
    from contrafuse.errors import ContrafuseError
    from contrafuse.methods import create_method

    path = tmp_path / "bench.yaml"
    path.write_text(text)
    if fragment is None:
        with pytest.raises(ContrafuseError, match="has no option 'radius'"):
            create_method("gff", radius=3)
        return
    with pytest.raises(ContrafuseError) as info:
        load_benchmark_config(path)
    assert str(path) in str(info.value) and fragment in str(info.value), str(info.value)


def test_benchmark_config_x_keys_hold_anchors(tmp_path):
    from contrafuse.bench.config import load_benchmark_config

    path = tmp_path / "bench.yaml"
    path.write_text("x-mine: &mine [gff, dwt]\ndatasets: [{name: a, suite: tno, methods: *mine}]\n")
    assert load_benchmark_config(path)["datasets"][0]["methods"] == ["gff", "dwt"]


def own_project(tmp_path, rng, suffix: str, key: str) -> Path:
    """A user's folders: two random 24x32 pairs in ``ir``/``vis`` and another method's constant (77)
    results in ``theirs`` (``.suffix`` files, named by ``key``: ``fused_dir`` or ``external``); the
    benchmark config beside them."""
    from PIL import Image

    data = tmp_path / "project"
    for name in ("a", "b"):
        for kind in ("ir", "vis"):
            (data / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((24, 32)) * 255).astype(np.uint8)).save(data / kind / f"{name}.png")
        (data / "theirs").mkdir(exist_ok=True)
        Image.fromarray(np.full((24, 32), 77, np.uint8)).save(data / "theirs" / f"{name}.{suffix}")
    config = data / "bench.yaml"
    config.write_text("datasets: [{name: mine, ir_dir: ir, vis_dir: vis}]\n"
                      f"methods: [average, {{name: flat, {key}: theirs}}]\nmetrics: [EN, SD]\n")
    return config


def test_benchmark_of_own_folders_and_someone_elses_fused_images(tmp_path, monkeypatch, rng):
    """A config naming the user's folders (relative to the config file) and a folder of another
    method's results, run from another directory; the external images are evaluated as they are."""
    config = own_project(tmp_path, rng, "bmp", "fused_dir")
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", str(config), "-o", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "mine" / "per_image_standard.csv")))
    flat = [r for r in rows if r["method"] == "flat"]
    assert sorted(r["image"] for r in flat) == ["a", "b"]
    assert all(float(r["EN"]) == 0.0 and float(r["SD"]) == 0.0 for r in flat)  # a constant image
    assert "flat" in (tmp_path / "out" / "report.md").read_text()


def test_a_recorded_method_is_read_from_an_earlier_benchmark_not_run(tmp_path, monkeypatch, rng, capsys):
    """A method whose images are gone keeps its rows: ``recorded`` reads an earlier benchmark's
    per-image values (the constant image's EN and SD are 0) without fusing or evaluating it, and
    leaves it out of the grid; a pair the earlier run lacks is a one-line error naming its table."""
    from contrafuse.bench import plots, runner

    config = own_project(tmp_path, rng, "png", "fused_dir")
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", str(config), "-o", str(tmp_path / "earlier")]) == 0
    earlier = json.loads((tmp_path / "earlier" / "summary.json").read_text())["mine/standard"]
    config.write_text("datasets: [{name: mine, ir_dir: ir, vis_dir: vis}]\nmetrics: [EN, SD]\n"
                      "methods: [maximum, {name: average, recorded: ../earlier}, {name: flat, recorded: ../earlier}]\n")
    evaluated, gridded = [], []
    evaluate_conventions = runner.evaluate_conventions
    monkeypatch.setattr(runner, "evaluate_conventions", lambda *a, **k: evaluated.append(a[2]) or evaluate_conventions(*a, **k))
    comparison_grid = plots.comparison_grid
    monkeypatch.setattr(plots, "comparison_grid", lambda pair, images, *a, **k: gridded.append(sorted(images))
                        or comparison_grid(pair, images, *a, **k))
    assert main(["benchmark", str(config), "-o", str(tmp_path / "now")]) == 0
    now = json.loads((tmp_path / "now" / "summary.json").read_text())["mine/standard"]
    assert len(evaluated) == 2 and not (tmp_path / "now" / "fused" / "mine" / "average").exists()  # maximum's only
    assert now["mean"]["flat"] == {"EN": 0.0, "SD": 0.0} and now["mean"]["average"] == earlier["mean"]["average"]
    assert now["std"]["average"] == earlier["std"]["average"] and set(now["mean"]) == {"maximum", "average", "flat"}
    assert gridded == [["maximum"]]
    recorded_lines = [line for line in (tmp_path / "now" / "report.md").read_text().splitlines() if "Recorded" in line]
    assert recorded_lines == [f"Recorded, not recomputed (no images in the grids), from `{tmp_path / 'earlier'}`: "
                              "average, flat."]

    table = tmp_path / "earlier" / "mine" / "per_image_standard.csv"
    table.write_text("".join(line for line in table.read_text().splitlines(keepends=True) if not line.startswith("b,flat")))
    capsys.readouterr()
    assert main(["benchmark", str(config), "-o", str(tmp_path / "now")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(table) in err and "recorded method flat: no values for b" in err and "\n" not in err


def test_metric_values_are_kept_per_triple_and_recomputed_when_an_image_or_the_request_changes(tmp_path, monkeypatch,
                                                                                                 rng):
    """A second run of the same benchmark evaluates nothing and writes the same tables; replacing one
    fused image re-evaluates that triple only (with its new values); asking for other metrics
    re-evaluates every triple."""
    from PIL import Image

    from contrafuse.bench import runner

    config = own_project(tmp_path, rng, "png", "external")
    data = config.parent
    calls = []
    evaluate_conventions = runner.evaluate_conventions
    monkeypatch.setattr(runner, "evaluate_conventions", lambda *a, **k: calls.append(a[2]) or evaluate_conventions(*a, **k))
    table = tmp_path / "out" / "mine" / "per_image_standard.csv"

    def run():
        calls.clear()
        assert main(["benchmark", str(config), "-o", str(tmp_path / "out")]) == 0
        return {(r["method"], r["image"]): (float(r["EN"]), float(r["SD"])) for r in csv.DictReader(open(table))}

    from contrafuse import fingerprint

    digested = []
    digest = fingerprint.digest
    counted = lambda part: digested.append(part) or digest(part)  # noqa: E731
    monkeypatch.setattr(runner, "digest", counted)  # every way a file is hashed for the cache
    monkeypatch.setattr(fingerprint, "digest", counted)
    first = run()
    assert len(calls) == 4 and first[("flat", "a")] == (0.0, 0.0)
    sources = sorted(p.name for p in digested if isinstance(p, Path) and p.parent.name in ("ir", "vis"))
    assert sources == ["a.png", "a.png", "b.png", "b.png"]  # each source read once, not once per method
    sha = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    key = "|".join([runner._metric_code(), "EN,SD", "standard", sha(data / "ir" / "a.png"), sha(data / "vis" / "a.png"),
                    sha(data / "theirs" / "a.png")])
    assert (tmp_path / "out" / "metric_cache" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json").is_file()
    assert run() == first and calls == []
    Image.fromarray((rng.random((24, 32)) * 255).astype(np.uint8)).save(data / "theirs" / "a.png")
    changed = run()
    assert [Path(c).name for c in calls] == ["a.png"] and changed[("flat", "a")][0] > 0
    assert {k: v for k, v in changed.items() if k != ("flat", "a")} == {k: v for k, v in first.items() if k != ("flat", "a")}
    config.write_text(config.read_text().replace("[EN, SD]", "[EN, SD, SF]"))
    run()
    assert len(calls) == 4


def test_benchmarks_sharing_a_cache_fuse_and_score_a_shared_method_once(tmp_path, monkeypatch, rng):
    """Two outputs, one ``--cache``: the second benchmark fuses nothing and evaluates nothing, and
    writes the same tables as the first; the cache holds the fused images, the outputs do not."""
    from contrafuse.bench import runner

    config = own_project(tmp_path, rng, "png", "external")
    calls, fusions = [], []
    evaluate_conventions, fuse_images = runner.evaluate_conventions, runner.fuse_images
    monkeypatch.setattr(runner, "evaluate_conventions", lambda *a, **k: calls.append(a[2]) or evaluate_conventions(*a, **k))
    monkeypatch.setattr(runner, "fuse_images", lambda *a, **k: fusions.append(1) or fuse_images(*a, **k))
    cache = tmp_path / "cache"
    tables = []
    for out in ("first", "second"):
        calls.clear(), fusions.clear()
        assert main(["benchmark", str(config), "-o", str(tmp_path / out), "--cache", str(cache)]) == 0
        tables.append((tmp_path / out / "mine" / "per_image_standard.csv").read_text())
        assert (len(calls), len(fusions)) == ((4, 2) if out == "first" else (0, 0))  # 2 methods x 2 pairs; 'average' fuses
        assert not (tmp_path / out / "fused").exists() and not (tmp_path / out / "metric_cache").exists()
    assert tables[0] == tables[1]
    assert sorted(p.name for p in (cache / "fused" / "mine" / "average").glob("*.png")) == ["a.png", "b.png"]


def test_cached_fusions_are_redone_when_a_source_image_changes_under_the_same_name(tmp_path, monkeypatch, rng):
    """Replacing one source image re-fuses that pair only: the 'average' result is the new pixel mean;
    a cache folder from before sources were recorded is taken as it is and recorded, not re-fused."""
    from PIL import Image

    from contrafuse.bench import runner

    config = own_project(tmp_path, rng, "png", "external")
    data, cache = config.parent, tmp_path / "cache"
    fusions = []
    fuse_images = runner.fuse_images
    monkeypatch.setattr(runner, "fuse_images", lambda *a, **k: fusions.append(1) or fuse_images(*a, **k))

    def run():
        fusions.clear()
        assert main(["benchmark", str(config), "-o", str(tmp_path / "out"), "--cache", str(cache)]) == 0
        return len(fusions)

    fused = cache / "fused" / "mine" / "average"
    assert run() == 2 and run() == 0
    (fused / ".sources.json").unlink()  # as a cache written before this record existed
    assert run() == 0 and (fused / ".sources.json").is_file()
    before_b = (fused / "b.png").read_bytes()
    ir = np.full((24, 32), 200, np.uint8)
    Image.fromarray(ir).save(data / "ir" / "a.png")
    assert run() == 1 and (fused / "b.png").read_bytes() == before_b
    vis = np.asarray(Image.open(data / "vis" / "a.png"), np.float64)
    expected = (ir / 255.0 + vis / 255.0) / 2
    assert np.abs(read_image(fused / "a.png") - expected).max() <= 1 / 255 + 1e-9
    assert run() == 0


def test_cached_fusions_are_redone_when_the_method_code_changes(tmp_path, monkeypatch):
    """The cache key covers the method's source files: an edit to one re-fuses, nothing else does."""
    from contrafuse.bench import runner

    code = tmp_path / "method.py"
    code.write_text("version = 1\n")
    monkeypatch.setattr(runner, "method_code", lambda cls: [code])
    spec = runner.MethodSpec(label="gff", name="gff")
    before = spec.fingerprint()
    assert spec.fingerprint() == before
    assert runner.MethodSpec(label="gff", name="gff", options={"radius": 3}).fingerprint() != before
    code.write_text("version = 2\n")
    assert spec.fingerprint() != before


def test_method_code_names_the_files_a_result_depends_on():
    from contrafuse.bench.runner import method_code
    from contrafuse.methods import METHODS

    classical = {p.name for p in method_code(METHODS.get("gff"))}
    learned = {p.name for p in method_code(METHODS.get("coconet"))}
    assert {"classical.py", "base.py", "io.py", "api.py"} <= classical and "coconet.py" not in classical
    assert {"learned.py", "coconet.py", "vgg.py", "tiling.py", "tiles.py", "staged.py"} <= learned


@pytest.mark.parametrize("name", SUITES)
def test_every_named_suite_resolves_to_pairs_that_exist(name):
    dataset()  # the suites read ../shared/datasets
    pairs = suite_pairs(name)
    assert pairs and all(Path(p.first).is_file() and Path(p.second).is_file() for p in pairs)


def test_model_card_from_two_runs_stops_at_the_chosen_epoch(tmp_path, monkeypatch):
    """benchmarks/package_models.py: a model trained in two runs (the second continuing the first's
    weights), shipped from the second run's epoch-2 checkpoint. The card lists both configs, the
    stages of both runs with the second cut after epoch 2, and the sum of the two runs' wall times;
    the package gets that checkpoint's weights, not the run's final ones."""
    import importlib.util

    import torch
    import yaml
    from safetensors.torch import load_file, save_file

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports render_docs beside it, as a script does
    spec = importlib.util.spec_from_file_location("package_models", REPO / "benchmarks" / "package_models.py")
    package_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package_models)
    monkeypatch.setattr(package_models, "PACKAGE_WEIGHTS", tmp_path / "package")

    def run(name, stages, log_rows, weights):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.yaml").write_text(yaml.safe_dump({"split": "tno", "lr": 1e-4, "stages": stages}))
        for stage, rows in log_rows.items():
            lines = ["stage,epoch,batch,step,seconds,total"]
            lines += [f"{stage},{e},{b},{s},{sec},{loss}" for e, b, s, sec, loss in rows]
            (folder / f"log_{stage}.csv").write_text("\n".join(lines) + "\n")
        for file, value in weights.items():
            save_file({"w": torch.full((2,), value)}, str(folder / file))
        return folder

    first = run("first", [{"name": "train", "epochs": 2}], {"train": [(1, 1, 1, 10.0, 4.0), (2, 1, 2, 20.0, 3.0)]},
                {"model.safetensors": 1.0})
    second = run("second", [{"name": "finetune", "epochs": 3}],
                 {"finetune": [(2, 1, 1, 30.0, 2.0), (3, 1, 2, 3600.0, 9.0)]},
                 {"finetune_epoch2.safetensors": 2.0, "model.safetensors": 3.0})
    card = package_models.write_model_card(f"{first}+{second}@2", "clfnet", "Demo", ["a note"])
    text = card.read_text()
    assert float(load_file(str(tmp_path / "package" / "clfnet_tno.safetensors"))["w"][0]) == 2.0
    assert "Weights: `contrafuse/weights/clfnet_tno.safetensors`" in text and "### lytro" in text  # rendered blocks
    assert "Config of run 1 of 2" in text and "Config of run 2 of 2" in text
    assert "| train | 2 | (2, 1) | 2 | total 3.5 |" in text      # mean of its two logged steps
    assert "| finetune | 3 | (2, 1) | 1 | total 2 |" in text     # epoch 3 is cut off
    assert "Wall time: 0.01 h" in text                            # 20 s + 30 s, not 20 s + 3600 s
