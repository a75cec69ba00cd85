"""The verdict sentences of benchmarks/paper_ablations.py (issue 38), on hand-built summaries."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
METRICS = ["EN", "MI", "VIFP", "SD", "AG", "SF"]  # CLF-Net's tables


@pytest.fixture
def ablations(monkeypatch):
    monkeypatch.chdir(REPO)  # sweeps name their run folders relative to the repository root
    spec = importlib.util.spec_from_file_location("paper_ablations", REPO / "benchmarks" / "paper_ablations.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "paper_ablations", module)  # as an import would (its dataclasses need it)
    spec.loader.exec_module(module)
    return module


def verdict(ablations, study, summary) -> str:
    """All the study's verdict sentences, as one text."""
    return " ".join(ablations.verdicts(study, summary))


def rows(**runs):
    """Every metric of a run at one value: ``name=value``."""
    return {name: dict.fromkeys(METRICS, value) for name, value in runs.items()}


def table6(test_rows, validation_rows=None):
    summary = {"clfnet_test/legacy": {"mean": test_rows}}
    if validation_rows:
        summary["roadscene_val/legacy"] = {"mean": validation_rows}
    return summary


def test_full_better_beyond_the_seed_spread_supports_and_validation_is_not_read(ablations):
    summary = table6(rows(clfnet_full_seed0=7.0, clfnet_full_seed1=7.2, clfnet_wo_patchnce_seed0=6.0,
                          clfnet_wo_patchnce_seed1=6.1),
                     validation_rows=rows(clfnet_full_seed0=1.0, clfnet_full_seed1=1.0,
                                          clfnet_wo_patchnce_seed0=9.0, clfnet_wo_patchnce_seed1=9.0))
    sentence = verdict(ablations, "clfnet_table6", summary)
    assert "Our result supports the paper's claim" in sentence
    assert "full is better in 6 and worse in 0 of 6 variant-metric cells beyond" in sentence
    assert "preliminary" not in sentence


def test_a_difference_within_the_seed_spread_is_a_tie(ablations):
    # means 7.2 vs 7.1: 0.1 apart, but full's seeds are 0.4 apart (half-range 0.2)
    summary = table6(rows(clfnet_full_seed0=7.0, clfnet_full_seed1=7.4, clfnet_wo_patchnce_seed0=7.1,
                          clfnet_wo_patchnce_seed1=7.1))
    sentence = verdict(ablations, "clfnet_table6", summary)
    assert "better in 0 and worse in 0 of 6" in sentence and "does not support" in sentence


def test_mixed_cells_and_lower_is_better_metrics(ablations, monkeypatch):
    test_rows = rows(clfnet_full_seed0=5.0, clfnet_full_seed1=5.0, clfnet_wo_patchnce_seed0=4.0,
                     clfnet_wo_patchnce_seed1=4.0)
    for name in ("clfnet_wo_patchnce_seed0", "clfnet_wo_patchnce_seed1"):  # the variant wins SD and AG
        test_rows[name].update(SD=6.0, AG=6.0)
    sentence = verdict(ablations, "clfnet_table6", table6(test_rows))
    assert "better in 4 and worse in 2 of 6" in sentence and "partly supports" in sentence
    assert "(worse: full vs w/o PatchNCE 2)" in sentence  # the losing cells, by pair of rows
    import dataclasses

    from contrafuse.metrics import METRICS as TABLE

    monkeypatch.setattr(ablations, "CLFNET_METRICS", ["SD", "AG", "EN"])
    monkeypatch.setitem(TABLE, "SD", dataclasses.replace(TABLE["SD"], higher_is_better=False))  # lower SD wins
    sentence = verdict(ablations, "clfnet_table6", table6(test_rows))
    assert "better in 2 and worse in 1 of 3" in sentence


def test_unfinished_runs_and_single_seeds_make_the_verdict_preliminary(ablations):
    sentence = verdict(ablations, "clfnet_table6", table6(rows(clfnet_full_seed0=7.0, clfnet_wo_patchnce_seed0=6.0)))
    assert "supports" in sentence and "not all runs have finished" in sentence and "one seed" in sentence
    empty = verdict(ablations, "clfnet_table6", table6(rows(clfnet_wo_patchnce_seed0=6.0)))
    assert "cannot be judged yet" in empty


def test_the_mask_study_claims_the_variants_alike(ablations):
    alike = {f"{d}/legacy": {"mean": {name: dict.fromkeys(ablations.COCONET_METRICS, 1.0) for name in (
        "coconet_full_seed2", "coconet_full_seed3", "coconet_saliency_masks_seed2", "coconet_saliency_masks_seed3")}}
        for d in ("tno", "roadscene")}
    assert "Our result supports the paper's claim that the result is almost independent" in verdict(
        ablations, "coconet_fig18", alike)
    for block in alike.values():
        for name in ("coconet_saliency_masks_seed2", "coconet_saliency_masks_seed3"):
            block["mean"][name] = dict.fromkeys(ablations.COCONET_METRICS, 2.0)
    assert "does not support" in verdict(ablations, "coconet_fig18", alike)


def test_the_mask_study_is_not_judged_on_one_seed_per_row_and_gives_the_differences(ablations):
    """One seed each: no spread, so "alike" is not judged; full at 1.0, saliency 1% above in five of six
    metrics and 4% above in SF on tno, 2% above everywhere on roadscene: median 2 %, at most 4 % (SF, tno)."""
    summary = {}
    for dataset, other in (("tno", 1.01), ("roadscene", 1.02)):
        means = {"coconet_full_seed2": dict.fromkeys(ablations.COCONET_METRICS, 1.0),
                 "coconet_saliency_masks_seed2": dict.fromkeys(ablations.COCONET_METRICS, other)}
        if dataset == "tno":
            means["coconet_saliency_masks_seed2"]["SF"] = 1.04
        summary[f"{dataset}/legacy"] = {"mean": means}
    sentence = verdict(ablations, "coconet_fig18", summary)
    assert "cannot be judged until its rows have two seeds" in sentence and "support" not in sentence
    assert "differ by 2.0 % at the median of 12 cells, at most 4.0 % (SF on tno)" in sentence


def test_fig15_curves_order_the_fixed_weights_and_keep_the_adaptive_line(ablations, tmp_path, monkeypatch):
    """Hand-built means: three fixed sigmas given out of order, one fixed gamma, the full run; an unknown
    run is ignored. Each curve lists only its own weight's runs, in increasing order; the plot is drawn."""
    means = {name: dict.fromkeys(ablations.COCONET_METRICS, value) for name, value in (
        ("coconet_sigma09_seed2", 6.9), ("coconet_sigma01_seed2", 6.1), ("coconet_sigma05_seed2", 6.5),
        ("coconet_gamma03_seed2", 7.3), ("coconet_full_seed2", 7.7), ("someone_else", 0.0))}
    series = ablations.fig15_series(means)
    assert set(series) == {("sigma", 2), ("gamma", 2)}
    assert [(v, m["EN"]) for v, m in series["sigma", 2]["fixed"]] == [(0.1, 6.1), (0.5, 6.5), (0.9, 6.9)]
    assert [(v, m["EN"]) for v, m in series["gamma", 2]["fixed"]] == [(0.3, 7.3)]
    assert series["sigma", 2]["adaptive"]["EN"] == series["gamma", 2]["adaptive"]["EN"] == 7.7
    from contrafuse.bench import plots

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **_: drawn.update(
        path=path, titles=[ax.get_title() for ax in fig.axes], lines=[len(ax.lines) for ax in fig.axes]))
    assert ablations.fig15_plot({"tno/legacy": {"mean": means}}, tmp_path / "fig15.png")
    assert drawn["path"] == tmp_path / "fig15.png"
    assert "SCD vs fixed gamma" in drawn["titles"] and "EN vs fixed sigma" in drawn["titles"]
    assert set(drawn["lines"]) == {2}  # per panel: the fixed-weight curve and the self-adaptive line


def test_the_queue_trains_every_study_and_its_first_pass_reads_every_study(ablations):
    """Every study is queued once, and the first pass holds at least one full run and one variant of each."""
    from fnmatch import fnmatch

    assert sorted(ablations.QUEUE) == sorted(ablations.STUDIES)
    for study in ablations.QUEUE:
        first = [p for p in ablations.points(study) if any(fnmatch(p.name, pat) for pat in ablations.FIRST_PASS)]
        assert any(p.variant == "full" for p in first) and any(p.variant != "full" for p in first), study


def test_training_record_separates_logged_hours_from_the_median_step_cost(ablations, tmp_path, monkeypatch):
    """A hand-made run: stage 1 steps at 1000, 2000, 3000 s and then a 17000 s pause; stage 2 steps of
    1800 s. Logged: 25400 s = 7.06 h; at the median step: 4 x 1000 + 3 x 1800 = 9400 s = 2.61 h."""

    run = tmp_path / "run"
    run.mkdir()
    (run / "sessions.jsonl").write_text('{"machine": {"cpu": "Test CPU", "cores": 2, "torch_threads": 1}}\n')
    (run / "log_train.csv").write_text("stage,epoch,batch,step,seconds,total\n" + "".join(
        f"train,1,{i},{i},{t},0.5\n" for i, t in enumerate((1000, 2000, 3000, 20000), 1)))
    (run / "log_finetune.csv").write_text("stage,epoch,batch,step,seconds,total\n" + "".join(
        f"finetune,1,{i},{i + 4},{t},0.5\n" for i, t in enumerate((21800, 23600, 25400), 1)))
    waiting = SimpleNamespace(name="b", folder=tmp_path / "absent", state=lambda: "waiting")
    stages = {"stages": [{"name": "train"}, {"name": "finetune"}]}
    monkeypatch.setattr(ablations, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(ablations, "points", lambda study: [
        SimpleNamespace(name="a", label="full", folder=run, config=stages, state=lambda: "done"), waiting])
    ablations.record_training("clfnet_table6")
    line = ablations.training_record("clfnet_table6")[0]
    assert "1 runs on Test CPU (2 cores, torch threads 1)" in line
    assert "7.06-7.06 h logged per run, 2.61-2.61 h at each stage's median step time" in line


def test_training_records_outlive_the_run_folders(ablations, tmp_path, monkeypatch):
    """A run recorded at one evaluation keeps its record when its folder is gone at the next, beside a
    run finished since; runs recovered from an earlier report are named with that report's line."""
    import json

    def run(name, seconds):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "log_train.csv").write_text("stage,epoch,batch,step,seconds,total\n" + "".join(
            f"train,1,{i},{i},{i * seconds},0.5\n" for i in range(1, 4)))
        return SimpleNamespace(name=name, label="full", folder=folder, config={"stages": [{"name": "train"}]},
                               state=lambda: "done" if folder.is_dir() else "waiting")

    docs = tmp_path / "docs"
    (docs / "paper_clfnet_table6").mkdir(parents=True)
    (docs / "paper_clfnet_table6" / "training.json").write_text(json.dumps({"recovered": {
        "runs": ["old_seed2"], "commit": "81a863c0", "training": "Training: 1 runs on Old CPU; 1.00-1.00 h logged."}}))
    monkeypatch.setattr(ablations, "DOCS", docs)
    first, second = run("first", 1800), run("second", 3600)
    monkeypatch.setattr(ablations, "points", lambda study: [first])
    ablations.record_training("clfnet_table6")
    (first.folder / "log_train.csv").unlink()
    first.folder.rmdir()
    monkeypatch.setattr(ablations, "points", lambda study: [first, second])
    ablations.record_training("clfnet_table6")
    line = ablations.training_record("clfnet_table6")[0]
    assert "Training: 2 runs" in line and "1.50-3.00 h logged per run" in line
    assert line.endswith("Before that, runs old_seed2, whose run folders were lost with their machine, as the report "
                         "at 81a863c recorded them: Training: 1 runs on Old CPU; 1.00-1.00 h logged.")


def test_the_queue_skips_the_runs_whose_values_the_docs_hold(ablations, tmp_path, monkeypatch):
    """A run evaluated before (its name in a study's summary.json) is not trained again; one sweep
    trains the first pass's runs before the rest."""
    import json
    import subprocess

    docs = tmp_path / "docs"
    (docs / "paper_coconet_fig15").mkdir(parents=True)
    (docs / "paper_coconet_fig15" / "summary.json").write_text(json.dumps({
        "machine": {}, "tno/legacy": {"mean": {"coconet_full_seed2": {}, "coconet_sigma01_seed3": {}, "coconet-shipped": {}}}}))
    monkeypatch.setattr(ablations, "DOCS", docs)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command: calls.append(command) or subprocess.CompletedProcess(command, 0))
    assert ablations.cmd_queue(SimpleNamespace(jobs=2)) == 0
    assert len(calls) == 1
    trained = [calls[0][i + 1] for i, arg in enumerate(calls[0]) if arg == "--only"]
    assert "coconet_sigma01_seed2" in trained and "coconet_sigma03_seed3" in trained
    assert not {"coconet_full_seed2", "coconet_sigma01_seed3"} & set(trained)
    first_pass = [name.endswith("seed2") or name.startswith("clfnet") for name in trained]
    assert first_pass == sorted(first_pass, reverse=True)  # every first-pass run before any other


def test_status_counts_recorded_runs_before_their_state_here(ablations, tmp_path, monkeypatch, capsys):
    """A run in the docs' summary is ``recorded`` even with no folder here; the others keep their state."""
    import json

    docs = tmp_path / "docs"
    (docs / "paper_clfnet_table6").mkdir(parents=True)
    (docs / "paper_clfnet_table6" / "summary.json").write_text(json.dumps({"tno/legacy": {"mean": {"clfnet_full_seed0": {}}}}))
    monkeypatch.setattr(ablations, "DOCS", docs)
    started = next(p for p in ablations.points("clfnet_table6") if p.name == "clfnet_full_seed1")
    monkeypatch.setattr(type(started), "state", lambda point: "started" if point.name == started.name else "waiting")
    assert ablations.run_states("clfnet_table6") == {"clfnet_full_seed0": "recorded", "clfnet_wo_patchnce_seed0": "waiting",
                                                     "clfnet_full_seed1": "started", "clfnet_wo_patchnce_seed1": "waiting"}
    ablations.cmd_status(None)
    assert "clfnet_table6: 1 recorded, 1 started, 2 waiting\n  started: clfnet_full_seed1\n" in capsys.readouterr().out


def test_evaluate_reads_a_run_whose_weights_are_gone_from_the_docs_values(ablations, tmp_path, monkeypatch):
    """The benchmark config an evaluation runs: a finished run by its weights, a run recorded in the docs
    but gone here as ``recorded`` (a copy of the docs' per-image tables), a run neither has left out."""
    import json
    import subprocess

    import yaml

    docs = tmp_path / "docs"
    (docs / "paper_clfnet_table6" / "tno").mkdir(parents=True)
    (docs / "paper_clfnet_table6" / "summary.json").write_text(json.dumps({"tno/legacy": {"mean": {"clfnet_full_seed0": {}}}}))
    (docs / "paper_clfnet_table6" / "tno" / "per_image_legacy.csv").write_text("image,method,EN\nTNO_001,clfnet_full_seed0,7\n")
    monkeypatch.setattr(ablations, "DOCS", docs)
    monkeypatch.setattr(ablations, "RUNS", tmp_path / "runs")
    finished = next(p for p in ablations.points("clfnet_table6") if p.name == "clfnet_wo_patchnce_seed0")
    monkeypatch.setattr(type(finished), "state", lambda point: "done" if point is finished else "waiting")
    monkeypatch.setattr(ablations, "record_training", lambda study: None)
    real_is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda path: path == finished.folder / "model.safetensors" or real_is_file(path))
    configs = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: configs.append(yaml.safe_load(Path(command[2]).read_text())))
    assert ablations.cmd_evaluate(SimpleNamespace(studies=["clfnet_table6"])) == 0
    methods = {m["label"]: m for m in configs[0]["methods"]}
    assert set(methods) == {"clfnet_wo_patchnce_seed0", "clfnet_full_seed0", "clfnet-shipped"}
    assert methods["clfnet_wo_patchnce_seed0"]["options"]["weights"].endswith("model.safetensors")
    copy = Path(methods["clfnet_full_seed0"]["recorded"])
    assert (copy / "tno" / "per_image_legacy.csv").read_text().endswith("TNO_001,clfnet_full_seed0,7\n")


def test_a_claim_of_the_text_compares_its_own_pairs_in_its_own_metrics(ablations):
    """Table 2's text: channel attention raises EN, SF, SD and VIF (w/o vgg over w/o ca&vgg, full over
    w/o ca). Rows built so that channel attention adds 1 to those four metrics and takes 1 from AG and
    SCD, and the VGG features take 1 from the four and 2 from AG and SCD: the channel-attention claim
    holds in all its 2 pairs x 4 metrics x 2 datasets, the VGG claim in none of its 24 cells, and full
    against every variant wins 8 of 36 cells (the four over w/o ca) and loses 20 (it ties w/o ca&vgg
    in the four)."""
    four = {"w/o ca&vgg": 8.0, "w/o vgg": 9.0, "w/o ca": 7.0, "full": 8.0}      # EN, SD, VIFP, SF
    other = {"w/o ca&vgg": 5.0, "w/o vgg": 4.0, "w/o ca": 3.0, "full": 2.0}     # AG, SCD
    stems = {"w/o ca&vgg": "coconet_wo_ca_vgg", "w/o vgg": "coconet_wo_vgg", "w/o ca": "coconet_wo_ca",
             "full": "coconet_full"}
    means = {f"{stem}_seed{seed}": {**dict.fromkeys(["EN", "SD", "VIFP", "SF"], four[label]),
                                    "AG": other[label], "SCD": other[label]}
             for label, stem in stems.items() for seed in (2, 3)}
    summary = {f"{d}/legacy": {"mean": means} for d in ("tno", "roadscene")}
    whole, vgg, attention = ablations.verdicts("coconet_table2", summary)
    assert "the row with channel attention is better in 16 and worse in 0 of 16 pair-metric cells" in attention
    assert attention.startswith("Our result supports")
    assert "the row with VGG features is better in 0 and worse in 24 of 24" in vgg and "does not support" in vgg
    assert "full is better in 8 and worse in 20 of 36 variant-metric cells" in whole and "does not support" in whole


def test_training_dynamics_read_the_named_loss_and_the_epoch_time_from_the_logs(ablations, tmp_path, monkeypatch):
    """Hand-made Table VIII runs of two 60-step epochs. (c): PatchNCE 6 for steps 1-50, 1 for 51-60,
    0.5 in epoch 2, a step every 2 s, then resumed from step 100, whose steps 100-120 log 0.25 (the
    rows that count); (a): 0.25 throughout, a step every 3 s. Expected: (c) 6, 310/60 = 5.167,
    (39 x 0.5 + 21 x 0.25)/60 = 0.4125 and 2 min per epoch; (a) 0.25 three times and 3 min; the
    unfinished (b) run and a finished run with an empty log are left out."""

    def run(name, loss, step_seconds, resumed=()):
        folder = tmp_path / name
        folder.mkdir()
        lines = [f"train,{1 + (i - 1) // 60},{i},{i},{i * step_seconds},{loss(i)},0.1,0\n" for i in range(1, 121)]
        lines += [f"train,2,{i - 60},{i},{400 + i * step_seconds},0.25,0.1,0\n" for i in resumed]
        (folder / "log_train.csv").write_text("stage,epoch,batch,step,seconds,patch_nce,ssim,total\n" + "".join(lines))
        return folder

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "log_train.csv").write_text("stage,epoch,batch,step,seconds,patch_nce,ssim,total\n")
    stages = {"stages": [{"name": "train"}]}
    points = [SimpleNamespace(name="c", label="strategy (c)", state=lambda: "done", config=stages,
                              folder=run("c", lambda i: 6 if i <= 50 else 1 if i <= 60 else 0.5, 2, range(100, 121))),
              SimpleNamespace(name="a", label="strategy (a)", folder=run("a", lambda i: 0.25, 3), config=stages,
                              state=lambda: "done"),
              SimpleNamespace(name="e", label="strategy (a)", folder=empty, config=stages, state=lambda: "done"),
              SimpleNamespace(name="b", label="strategy (b)", folder=tmp_path / "absent", state=lambda: "started")]
    monkeypatch.setattr(ablations, "points", lambda study: points)
    monkeypatch.setattr(ablations, "DOCS", tmp_path / "docs")
    ablations.record_training("clfnet_table8")
    rows = [line for line in ablations.training_dynamics("clfnet_table8") if line.startswith("| strategy")]
    assert rows == ['| strategy (c) | 1 | 6 | 5.167 | 0.4125 | 2.0 [16\'50"] |',
                    '| strategy (a) | 1 | 0.25 | 0.25 | 0.25 | 3.0 [16\'52"] |']
    assert ablations.training_dynamics("clfnet_table6") == []  # its paper does not argue from training
