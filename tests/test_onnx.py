"""ONNX export and the onnxruntime backend: same results as the torch backend, cached exports,
no PyTorch import once the export is cached."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import dataset

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from contrafuse.cli import main
from contrafuse.errors import ContrafuseError
from contrafuse.io import luminance, read_image
from contrafuse.methods import create_method


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("contrafuse-home")


@pytest.fixture
def cache(home, monkeypatch):
    import shutil

    from contrafuse.weights import home as real_home
    for name in ("vgg19_caffe.safetensors", "vgg19_caffe.safetensors.sha256"):  # CoCoNet's VGG cache
        if (real_home() / name).exists() and not (home / name).exists():
            shutil.copy(real_home() / name, home / name)
    monkeypatch.setenv("CONTRAFUSE_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def pair():
    folder = dataset("TNO_CoCoNet")
    ir, vis = (luminance(read_image(folder / kind / "TNO_005.png")) for kind in ("ir", "vis"))
    return ir[:150, :210], vis[:150, :210]


@pytest.mark.parametrize("name", ["clfnet"])  # every protocol of every model: tests/test_zoo.py
def test_onnxruntime_backend_matches_torch(cache, pair, name):
    reference = create_method(name, precision="fp32").fuse_grey(*pair)
    method = create_method(name, backend="onnxruntime")
    assert len(list((cache / "onnx").glob(f"{name}-*.onnx"))) == 1
    assert np.abs(method.fuse_grey(*pair) - reference).max() * 255 < 0.01


def test_cached_export_runs_without_torch(cache, pair, tmp_path):
    create_method("clfnet", backend="onnxruntime")  # exported (or already cached)
    np.save(tmp_path / "ir.npy", pair[0])
    np.save(tmp_path / "vis.npy", pair[1])
    code = ("import sys, numpy as np; from contrafuse.methods import create_method\n"
            "m = create_method('clfnet', backend='onnxruntime')\n"
            f"out = m.fuse_grey(np.load({str(tmp_path / 'ir.npy')!r}), np.load({str(tmp_path / 'vis.npy')!r}))\n"
            "assert out.shape == (150, 210) and 'torch' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ})


def test_tiles_with_onnxruntime(cache, pair):
    whole = create_method("clfnet", backend="onnxruntime", tile=0).fuse_grey(*pair)
    tiled = create_method("clfnet", backend="onnxruntime", tile=64).fuse_grey(*pair)
    assert np.abs(tiled - whole).max() * 255 < 0.01
    with pytest.raises(ContrafuseError, match="needs the torch backend"):
        create_method("coconet", backend="onnxruntime", tile=112).fuse_grey(*pair)


def test_export_command_writes_a_self_describing_model(cache, tmp_path, capfd):
    import onnx

    out = tmp_path / "clfnet.onnx"
    assert main(["export", "--method", "clfnet", "--inference", "standard", "-o", str(out)]) == 0
    printed = [line for line in "".join(capfd.readouterr()).splitlines() if line.strip()]
    assert printed == [f"wrote {out}"]  # none of the exporter's own log lines
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    recipe = json.loads(meta["contrafuse"])
    assert recipe["method"] == "clfnet" and recipe["inference"] == "standard" and recipe["border"] == 8
    assert main(["export", "--method", "gff", "-o", str(tmp_path / "g.onnx")]) == 2
    assert main(["export", "--method", "clfnet", "-o", str(tmp_path / "x.png")]) == 2
    assert "must be a .onnx file" in capfd.readouterr().err
