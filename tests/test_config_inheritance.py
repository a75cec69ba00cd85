"""Configs that inherit (``base:``), dotted keys and overrides, per-method keys: semantics checked on
hand-written tiny configs against hand-written expected results; every mistake one line."""

import contextlib
import io
import os
from pathlib import Path

import pytest
import yaml
from conftest import TinyRecipe

from contrafuse.cli import main
from contrafuse.errors import ContrafuseError
from contrafuse.inherit import load_layers, parse_override
from contrafuse.schema import Key
from contrafuse.train.config import load_config
from contrafuse.train.recipes import RECIPES

CLFNET = {"method": "clfnet", "split": "tno", "lr": 1e-3, "batch_size": 2, "patch_size": 16, "stride": 16,
          "stages": [{"name": "train", "epochs": 2}, {"name": "finetune", "epochs": 1}]}


def _write(path: Path, mapping: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def _one_line(exc: pytest.ExceptionInfo, *fragments: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_a_chain_of_bases_merges_mappings_replaces_lists_and_deletes(tmp_path):
    _write(tmp_path / "grand.yaml", {"a": {"x": 1, "y": 2}, "l": [1, 2], "s": 1, "keep": "k"})
    _write(tmp_path / "parent.yaml", {"base": "grand.yaml", "a": {"y": 3}, "l": [3]})
    child = _write(tmp_path / "sub" / "child.yaml", {"base": "../parent.yaml", "a.z": 4, "s": None, "a": {"x": None}})
    assert load_layers(child) == {"a": {"y": 3, "z": 4}, "l": [3], "keep": "k"}


def test_dotted_keys_reach_list_items_by_index_or_name(tmp_path):
    path = _write(tmp_path / "c.yaml", {"base": "b.yaml", "stages.finetune.epochs": 9, "stages.0.batch_size": 5,
                                        "stages.train.converge": {"patience": 3}})
    _write(tmp_path / "b.yaml", {"stages": [{"name": "train", "epochs": 2, "converge": {"tolerance": 0.1}},
                                            {"name": "finetune", "epochs": 1}]})
    assert load_layers(path)["stages"] == [{"name": "train", "epochs": 2, "batch_size": 5,
                                            "converge": {"tolerance": 0.1, "patience": 3}},
                                           {"name": "finetune", "epochs": 9}]


@pytest.mark.parametrize("files, fragments", [
    ({"a.yaml": {"base": "b.yaml"}, "b.yaml": {"base": "a.yaml"}}, ["cycle", "a.yaml -> ", "b.yaml -> ", "a.yaml"]),
    ({"a.yaml": {"base": "missing.yaml"}}, ["missing.yaml", "file not found"]),
    ({"a.yaml": {"base": 3}}, ["a.yaml", "base must name a config file"]),
    ({"a.yaml": {"base": "b.yaml", "gone": None}, "b.yaml": {}}, ["a.yaml", "gone: null deletes an inherited key"]),
    ({"a.yaml": {"base": "b.yaml", "s.x": 1}, "b.yaml": {"s": 2}}, ["s.x: s is 2, which has no keys"]),
    ({"a.yaml": {"base": "b.yaml", "stages.tune.epochs": 1}, "b.yaml": {"stages": [{"name": "train"}]}},
     ["stages.tune.epochs: no item 'tune'", "0 (train)"]),
])
def test_inheritance_mistakes_are_one_line(tmp_path, files, fragments):
    for name, mapping in files.items():
        _write(tmp_path / name, mapping)
    with pytest.raises(ContrafuseError) as exc:
        load_layers(tmp_path / "a.yaml")
    _one_line(exc, *fragments)


def test_input_paths_are_relative_to_the_file_that_names_them(tmp_path, monkeypatch):
    _write(tmp_path / "recipes" / "base.yaml", {**CLFNET, "init_weights": "w.safetensors"})
    child = _write(tmp_path / "studies" / "deep" / "child.yaml", {"base": "../../recipes/base.yaml", "seed": 4})
    cfg = load_config(child)
    assert Path(os.path.normpath(cfg["init_weights"])) == tmp_path / "recipes" / "w.safetensors"
    assert cfg["seed"] == 4 and cfg["split"].endswith("tno.yaml")
    monkeypatch.chdir(tmp_path)  # an override's path is relative to the working directory
    assert load_config(child, ["init_weights=mine.safetensors"])["init_weights"] == "mine.safetensors"


def test_overrides_apply_on_top_as_yaml_values(tmp_path):
    path = _write(tmp_path / "c.yaml", CLFNET)
    cfg = load_config(path, ["seed=3", "lr=2.5e-4", "finetune.epochs=10", "stages.0.converge={patience: 4}",
                             "negatives=b", "train_pairs=5", "train_pairs=null"])
    assert (cfg["seed"], cfg["lr"], cfg["negatives"]) == (3, 2.5e-4, "b") and "train_pairs" not in cfg
    assert cfg["stages"] == [{"name": "train", "epochs": 2, "converge": {"patience": 4}},
                             {"name": "finetune", "epochs": 10}]
    assert parse_override("mam.vgg_levels=[low, high]") == ("mam.vgg_levels", ["low", "high"])


@pytest.mark.parametrize("overrides, fragments", [
    (["seedd=3"], ["unknown key 'seedd'", "did you mean 'seed'?", "with overrides seedd=3"]),
    (["stages.finetune.epoch=3"], ["unknown key stages.finetune.'epoch'", "did you mean 'epochs'?"]),
    (["stages.0.epochs=0"], ["stages[0].epochs must be at least 1, not 0"]),
    (["lr=null"], ["missing required key 'lr'"]),
    (["masks=mri"], ["key 'masks' is for method coconet", "'clfnet' does not use it"]),
    (["seed"], ["override 'seed' must be key=value"]),
    (["seed=[1"], ["override 'seed=[1': the value is not valid YAML"]),
])
def test_override_mistakes_are_one_line_with_exit_2(tmp_path, overrides, fragments):
    path = _write(tmp_path / "c.yaml", CLFNET)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "clfnet", "--config", str(path), *overrides, "--out", str(tmp_path / "run")])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("contrafuse: error:"), err.getvalue()
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method, key, value, fragment", [
    ("clfnet", "masks", "mri", "key 'masks' is for method coconet; method 'clfnet' does not use it"),
    ("coconet", "negatives", "a", "key 'negatives' is for method clfnet; method 'coconet' does not use it"),
    ("clfnet", "stages", [{"epochs": 1, "contrastive": True}], "unknown key stages[0].'contrastive'"),
    ("clfnet", "method", "unet", "method must be one of coconet, clfnet, not 'unet'"),
])
def test_each_method_takes_only_its_own_keys(tmp_path, method, key, value, fragment):
    shipped = yaml.safe_load((Path(__file__).parents[1] / "configs" / f"{method}_tno.yaml").read_text())
    path = _write(tmp_path / "c.yaml", {**shipped, key: value})
    with pytest.raises(ContrafuseError) as exc:
        load_config(path)
    _one_line(exc, fragment, "c.yaml")


class _Tiny(TinyRecipe):
    keys = {"width": Key(int, required=True, minimum=1)}
    stage_keys: dict = {}


def test_a_registered_recipe_brings_its_method_and_keys_and_the_run_records_the_resolved_config(tmp_path, monkeypatch):
    """The allowed methods and their keys come from the recipe registry: a new recipe is a new method
    with its own keys, and ``train`` records the config as resolved (base, overrides) in the run."""
    monkeypatch.setitem(RECIPES._items, "tiny", _Tiny)
    _write(tmp_path / "base.yaml", {"method": "tiny", "split": "tno", "lr": 0.01, "batch_size": 4, "patch_size": 8,
                                    "width": 2, "stages": [{"name": "train", "epochs": 1}], "seed": 1})
    child = _write(tmp_path / "child.yaml", {"base": "base.yaml", "width": 3})
    with pytest.raises(ContrafuseError) as exc:
        load_config(child, ["stride=16"])
    _one_line(exc, "key 'stride' is for method clfnet")
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "tiny", "--config", str(child), "seed=7", "train.epochs=2", "--out", str(out)]) == 0
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert (recorded["width"], recorded["seed"], recorded["stages"]) == (3, 7, [{"name": "train", "epochs": 2}])
    assert recorded["lr"] == 0.01 and "base" not in recorded


def test_command_line_choices_come_from_the_registries_without_importing_them(tmp_path, capsys):
    """The CLI's precisions and conventions are the registries' (a wrong one is argparse's usage error,
    naming them), yet building the parser imports neither PyTorch nor the metrics."""
    import subprocess
    import sys

    from contrafuse.metrics import CONVENTIONS
    from contrafuse.precision import PRECISIONS

    probe = ("import sys, contrafuse.cli as c; c.build_parser(); "
             "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('contrafuse.metrics')))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    for argv, names in ((["evaluate", "--ir-dir", "a", "--vis-dir", "b", "--fused-dir", "c", "-o", "x.csv",
                          "--convention", "bogus"], CONVENTIONS),
                        (["train", "clfnet", "--config", "c.yaml", "--precision", "fp8"], PRECISIONS)):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert f"(choose from {', '.join(repr(n) for n in names)})" in capsys.readouterr().err


#: keys that describe where and how a run ran, not what it learned
RUN_ENVIRONMENT = {"output", "threads", "precision", "world_size"}


@pytest.mark.parametrize("card, config", [("coconet_tno", "coconet_tno.yaml"),
                                          ("coconet_medical", "coconet_medical_finetune2.yaml")])
def test_shipped_recipes_resolve_to_the_config_their_model_card_recorded(card, config):
    """The recipe every CoCoNet sweep inherits from trains what the shipped model was trained with:
    each training key the model card's run record holds has the same value in the resolved config.
    (CLF-Net's card records the continuation from epoch 1 of the original run, which no config
    in configs/ reproduces as a whole; its recipe is checked by the sweeps' own tests.)"""
    import json
    import re

    from contrafuse.train.config import load_config

    repo = Path(__file__).resolve().parents[1]
    recorded = json.loads(re.search(r"- Config: `(\{.*\})`", (repo / "contrafuse" / "weights" / f"{card}.md")
                                    .read_text()).group(1))
    resolved = load_config(repo / "configs" / config)
    for key, value in recorded.items():
        if key in RUN_ENVIRONMENT:
            continue
        if key == "split":
            assert Path(resolved[key]) == (repo / value).resolve(), key
        else:
            assert resolved[key] == value, (key, resolved[key], value)
