"""The model zoo: every spec is valid and complete, every peer reproduces the official code's output
(../shared/peers/reference: the authors' code run with the official weights), and every protocol of
every model gives the same image through ONNX Runtime as through PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import dataset, peers
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import contrafuse
from contrafuse.api import fuse_images
from contrafuse.errors import ContrafuseError
from contrafuse.methods import create_method
from contrafuse.models import MODEL_SPECS, load_spec

PEERS = [name for name, spec in MODEL_SPECS.items() if not spec.weights.packaged]
#: the reference pairs run in CI: the two smallest colour VIFB pairs and a grey TNO pair (the
#: acceptance check, ../shared/checks/run zoo, runs all fifteen)
CI_PAIRS = [("VIFB_calib", "carWhite"), ("VIFB_calib", "fight"), ("TNO_CoCoNet", "TNO_003")]


def test_the_four_papers_peers_are_declared():
    assert {"densefuse", "ifcnn", "seafusion", "tardal"} <= set(PEERS)


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_spec_parameter_count_is_the_network_s(name):
    """The declared count (``contrafuse methods``) against the built network; the peers' counts
    are the ones ../shared/peers/README.md gives for the official state dicts."""
    from contrafuse.nn import fusion_parameters
    spec = MODEL_SPECS[name]
    model = create_method(name, precision="fp32").build()  # as declared: before BatchNorm folding
    assert sum(p.numel() for p in fusion_parameters(model)) == spec.parameters


#: LUT-Fuse's script resizes to multiples of 16, so its references of the pairs above are resized
#: (skipped): manCar (384x512) is compared instead
REFERENCE_CASES = [(name, *pair) for name in PEERS for pair in CI_PAIRS] + [("lutfuse", "VIFB_calib", "manCar")]


@pytest.mark.parametrize("name,folder,pair", REFERENCE_CASES)
def test_peer_reproduces_the_official_code(name, folder, pair):
    """As the acceptance check: the original files, float32, the default protocol; a colour result
    reduced to its BT.601 luma; mean |difference| <= 0.5 grey levels, >= 99 % within one level."""
    reference = np.asarray(Image.open(peers("reference", name, f"{pair}.png")).convert("L"), np.float64)
    data = dataset(folder)
    ir, vis = (next((data / kind).glob(f"{pair}.*")) for kind in ("ir", "vis"))
    if reference.shape != Image.open(ir).size[::-1]:
        pytest.skip("the official script resized this pair (LUT-Fuse: to multiples of 16)")
    out = np.asarray(contrafuse.fuse(ir, vis, method=create_method(name, precision="fp32")), np.float64)
    if out.ndim == 3:
        out = out @ np.array([0.299, 0.587, 0.114])
    diff = np.abs(out * 255 - reference)
    assert diff.mean() <= 0.5 and (diff <= 1).mean() >= 0.99, (diff.mean(), (diff <= 1).mean())


def test_official_weights_are_sha256_checked(tmp_path, monkeypatch):
    (tmp_path / "densefuse").mkdir()
    (tmp_path / "densefuse" / "densefuse_gray.model").write_bytes(b"not the official file")
    monkeypatch.setenv("CONTRAFUSE_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(ContrafuseError, match="expected sha256 b34cf365.*contrafuse weights fetch densefuse"):
        create_method("densefuse")


def test_missing_official_weights_name_the_model_and_how_to_get_them(tmp_path, monkeypatch):
    from contrafuse.weights import model_weights
    monkeypatch.setenv("CONTRAFUSE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("CONTRAFUSE_HOME", str(tmp_path / "home"))
    with pytest.raises(ContrafuseError, match="tardal: weights not found; expected sha256 e0fa61e2"):
        model_weights(MODEL_SPECS["tardal"], fetch=False)


def test_a_grey_pair_through_a_colour_network_gives_its_luma():
    """IFCNN fuses RGB; grey sources enter as three equal channels and a grey result comes back."""
    rng = np.random.default_rng(0)
    ir, vis = (rng.random((40, 52)).astype(np.float32) for _ in range(2))
    method = create_method("ifcnn", precision="fp32")
    grey = contrafuse.fuse(ir, vis, method=method)
    colour = fuse_images(ir, np.dstack([vis] * 3), method)  # past the reader, which reads equal channels as grey
    assert grey.shape == (40, 52) and colour.shape == (40, 52, 3)
    assert np.abs(colour @ np.array([0.299, 0.587, 0.114]) - grey).max() < 1e-5


@settings(max_examples=12, deadline=None)
@given(height=st.integers(1, 33), width=st.integers(1, 33), name=st.sampled_from(sorted(MODEL_SPECS)),
       seed=st.integers(0, 2**16))
def test_any_size_gives_that_size_in_the_unit_range_or_one_clear_error(height, width, name, seed):
    """Every model, any size down to one pixel: the input's shape back, in [0, 1], or (only for
    per-image statistics on a single pixel) a one-line error."""
    rng = np.random.default_rng(seed)
    ir, vis = (rng.random((height, width)).astype(np.float32) for _ in range(2))
    method = _cached(name)
    try:
        out = method.fuse_grey(ir, vis)
    except ContrafuseError as exc:
        assert method.needs_whole_image_statistics and max(height, width) <= method.multiple, exc
        return
    assert out.shape == (height, width) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


_METHODS: dict = {}


def _cached(name):
    if name not in _METHODS:
        _METHODS[name] = create_method(name, precision="fp32")
    return _METHODS[name]


def test_a_model_whose_tiles_are_not_exact_never_tiles(monkeypatch):
    """SAGE resamples on a grid tied to the whole image's size: an explicit tile is refused, and an
    image over the memory budget runs whole rather than approximately."""
    with pytest.raises(ContrafuseError, match="would not reproduce"):
        create_method("sage", tile=64)
    monkeypatch.setenv("CONTRAFUSE_TILE_MEMORY", "1000")
    assert create_method("sage")._core_size(600, 800) == 0
    assert create_method("densefuse")._core_size(600, 800) > 0


def test_per_image_batchnorm_refuses_a_single_pixel():
    with pytest.raises(ContrafuseError, match="too small for tardal's per-image BatchNorm"):
        create_method("tardal").fuse_grey(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32))


def test_a_bad_spec_is_a_one_line_error_naming_file_and_key(tmp_path):
    text = (MODEL_SPECS["densefuse"].source_file.read_text()
            .replace("output_8bit: floor", "output_8bit: truncate"))
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ContrafuseError, match=r"bad.yaml: protocols.official.output_8bit must be one of"):
        load_spec(tmp_path / "bad.yaml")


# -- ONNX: every protocol of every model ---------------------------------------------------------
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

PROTOCOLS = [(name, protocol) for name, spec in MODEL_SPECS.items() for protocol in spec.protocols]


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-home")


@pytest.fixture(scope="module")
def colour_pair():
    folder = dataset("VIFB_calib")
    ir, vis = (np.asarray(Image.open(folder / kind / "carWhite.jpg").convert("RGB")) for kind in ("ir", "vis"))
    return ir[:96, :136, 0], vis[:96, :136]


@pytest.mark.parametrize("name,protocol", PROTOCOLS)
def test_onnx_export_gives_the_pytorch_image(onnx_home, monkeypatch, colour_pair, name, protocol):
    import shutil

    from contrafuse.weights import home as real_home
    for file in ("vgg19_caffe.safetensors", "vgg19_caffe.safetensors.sha256"):  # CoCoNet's VGG cache
        if (real_home() / file).exists() and not (onnx_home / file).exists():
            shutil.copy(real_home() / file, onnx_home / file)
    monkeypatch.setenv("CONTRAFUSE_HOME", str(onnx_home))
    ir, vis = colour_pair
    if MODEL_SPECS[name].functional_first:
        ir, vis = vis, ir  # the medical model takes the colour functional image first
    torch_out = contrafuse.fuse(ir, vis, method=create_method(name, inference=protocol, precision="fp32"))
    method = create_method(name, inference=protocol, backend="onnxruntime")
    onnx_out = contrafuse.fuse(ir, vis, method=method)
    assert np.abs(onnx_out - torch_out).mean() * 255 <= 0.5
    recipe = method.onnx.recipe
    assert recipe["protocol"] == MODEL_SPECS[name].protocols[protocol].as_dict()


def test_clfnet_authors_stretch_survives_export(tmp_path, onnx_home, monkeypatch):
    import onnx

    from contrafuse.cli import main
    monkeypatch.setenv("CONTRAFUSE_HOME", str(onnx_home))
    out = tmp_path / "clfnet.onnx"
    assert main(["export", "--method", "clfnet", "--inference", "authors", "-o", str(out)]) == 0
    recipe = json.loads({p.key: p.value for p in onnx.load(out).metadata_props}["contrafuse"])
    assert recipe["protocol"]["stretch"] is True and recipe["inference"] == "authors"
    rng = np.random.default_rng(1)
    ir, vis = (rng.random((48, 64)).astype(np.float32) * 0.5 + 0.2 for _ in range(2))
    fused = create_method("clfnet", inference="authors", backend="onnxruntime").fuse_grey(ir, vis)
    assert fused.min() == 0.0 and fused.max() == 1.0  # stretched to the full range
