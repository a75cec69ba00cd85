"""Metric tests: VIFB calibration, legacy value ranges, and per-metric properties."""

import csv
import json
import math

import numpy as np
import pytest
from conftest import DATASETS, REPO, dataset, save
from PIL import Image

from contrafuse.cli import main
from contrafuse.errors import ContrafuseError
from contrafuse.metrics import METRICS, VIFB_COLUMNS, conventions_used, create_metric, evaluate

# ---------------------------------------------------------------------------------------------
# VIFB calibration: our vifb convention against VIFB's own MATLAB values (relative error 1e-3) for
# every one of the 25 methods whose fused images VIFB distributes, on two of its ten images (about a
# minute); benchmarks/vifb_calibration.py checks all 250 triples and records the worst errors in
# benchmarks/results/vifb_calibration.json.

CALIBRATION_IMAGES = ["carShadow", "kettle"]
#: VIFB's published values for these two disagree with its published images by more than the
#: rounding of its tables: worst relative errors 6.0 % (YDTR, Cross_entropy on kettle) and 2.3 %
#: (SwinFusion) in benchmarks/results/vifb_calibration.json, where the other 23 methods stay under
#: 5e-5. The values were presumably computed from images other than the JPEGs distributed.
MISMATCHED_REFERENCES = {"YDTR", "SwinFusion"}


def vifb_reference():
    root = dataset("VIFB_calib")
    with open(root / "vifb_reference_metrics.csv") as handle:
        return root, {(r["image"], r["method"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)}


def _vifb_methods():
    """The methods with fused images in VIFB_calib (read at collection; when the data is absent one
    placeholder, whose test skips or, under CONTRAFUSE_REQUIRE_DATA=1, fails)."""
    fused = DATASETS / "VIFB_calib" / "fused"
    methods = sorted({p.stem.split("_", 1)[1] for p in fused.glob("*.jpg")}) if fused.is_dir() else ["(no data)"]
    return [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason="published values disagree with the "
                                                    "published images")) if m in MISMATCHED_REFERENCES else m
            for m in methods]


@pytest.mark.parametrize("method", _vifb_methods())
def test_vifb_calibration(method):
    root, reference = vifb_reference()
    assert len({key[0] for key in reference}) == 10
    for image in CALIBRATION_IMAGES:
        vis = np.asarray(Image.open(root / "vis" / f"{image}.jpg"))
        ir = np.asarray(Image.open(root / "ir" / f"{image}.jpg"))
        fused = np.asarray(Image.open(root / "fused" / f"{image}_{method}.jpg"))
        for name, (_, func) in VIFB_COLUMNS.items():
            expected = reference[(image, method, name)]
            got = func(ir, vis, fused)
            assert abs(got - expected) <= 1e-3 * abs(expected), (image, method, name, got, expected)


def test_vifb_convention_through_evaluate_matches_reference():
    root, reference = vifb_reference()
    values = evaluate(root / "ir" / "fight.jpg", root / "vis" / "fight.jpg", root / "fused" / "fight_GFF.jpg",
                      metrics=["EN", "MI", "SSIM", "SD", "VIFF"], convention="vifb")
    for short, name in (("EN", "Entropy"), ("MI", "Mutinf"), ("SSIM", "Ssim"), ("SD", "Variance")):
        expected = reference[("fight", "GFF", name)]
        assert abs(values[short] - expected) <= 1e-3 * abs(expected)
    assert conventions_used(["EN", "VIFF"], "vifb") == {"EN": "vifb", "VIFF": "standard"}


# ---------------------------------------------------------------------------------------------
# legacy reproduces the value ranges of the seed papers' tables on TNO

def test_legacy_ranges_on_tno(tmp_path):
    import contrafuse
    root = dataset("TNO_CoCoNet")
    for name in ("TNO_001", "TNO_006", "TNO_021", "TNO_028"):
        ir, vis = root / "ir" / f"{name}.png", root / "vis" / f"{name}.png"
        fused = (contrafuse.fuse(ir, vis, method="gff") * 255).round().astype(np.uint8)
        legacy = evaluate(ir, vis, fused, metrics=["EN", "SD", "SF", "AG"], convention="legacy")
        standard = evaluate(ir, vis, fused, metrics=["SD", "SF"], convention="standard")
        assert 6.0 < legacy["EN"] < 8.0
        assert 7.0 < legacy["SD"] < 12.5          # papers: 9-11
        assert 0.015 < legacy["SF"] < 0.1         # papers: 0.02-0.09
        assert 1.5 < legacy["AG"] < 9.0           # papers: 2.7-8
        assert standard["SD"] > 20                # the textbook SD is 20-60 on the same images
        # legacy SF: the toolbox's SF_evaluation, each difference image averaged over its own size
        f = fused.astype(np.float64) / 255
        rows, cols = f.shape
        rf2 = ((f[1:] - f[:-1]) ** 2).sum() / ((rows - 1) * cols)
        cf2 = ((f[:, 1:] - f[:, :-1]) ** 2).sum() / (rows * (cols - 1))
        assert math.isclose(legacy["SF"], math.sqrt(rf2 + cf2), rel_tol=1e-12)
        assert math.isclose(standard["SF"], 255 * math.sqrt((rf2 * (rows - 1) * cols + cf2 * rows * (cols - 1))
                                                             / (rows * cols)), rel_tol=1e-12)


def test_ssim_replicate_border_map_equals_the_valid_map_inside(triple):
    """MATLAB's built-in ssim (replicated borders, full-size map): inside the image its map equals
    Wang's 'valid' map; only the border ring differs."""
    from contrafuse.metrics.similarity import ssim_components
    ir, vis, fused = (a.astype(np.float64) for a in triple)
    full = np.multiply(*ssim_components(ir, fused, "replicate"))
    valid = np.multiply(*ssim_components(ir, fused, "valid"))
    assert full.shape == ir.shape and np.allclose(full[5:-5, 5:-5], valid, atol=1e-12)


def test_legacy_ssim_is_mef_ssim(triple):
    """The toolbox's SSIM column is MEF-SSIM of (IR, VIS) -> F: 1 when the fused image is the
    desired patch itself (identical sources), different from the averaged SSIM otherwise."""
    legacy = evaluate(*triple, metrics=["SSIM"], convention="legacy")["SSIM"]
    assert -1 <= legacy <= 1
    assert legacy != pytest.approx(evaluate(*triple, metrics=["SSIM"])["SSIM"], rel=1e-6)
    same = triple[0]
    assert evaluate(same, same, same, metrics=["SSIM"], convention="legacy")["SSIM"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# properties of every metric

@pytest.fixture(scope="module")
def triple():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:200, :220]
    base = 120 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    ir = np.clip(base + 25 * rng.standard_normal(base.shape), 0, 255).round()
    vis = np.clip(255 - base + 25 * rng.standard_normal(base.shape), 0, 255).round()
    fused = np.clip((ir + vis) / 2 + 10 * rng.standard_normal(base.shape), 0, 255).round()
    return ir.astype(np.uint8), vis.astype(np.uint8), fused.astype(np.uint8)


IDENTICAL = {"SSIM": 1.0, "MS_SSIM": 1.0, "FMI_pixel": 1.0, "FMI_dct": 1.0, "FMI_w": 1.0, "VIFF": 1.0,
             "VIFP": 2.0, "CC": 1.0, "RMSE": 0.0, "MSE": 0.0, "CE": 0.0, "Nabf": 0.0, "SCD": 0.0, "Qcb": 1.0,
             "Qcv": 0.0, "PSNR": math.inf,
             # Liu et al.: MI(A, A) = H(A) gives 2; three identical edge-band sums give 3; equal
             # strengths and orientations give Q_G = (1 / (1 + e^-5))^2 (kappa -10 and -20 at 0.5 and
             # 0.25 from the deltas). Not Q_P: it correlates masked source maps with the unmasked
             # fused map, so identical inputs score below 1.
             "Q_MI": 2.0, "Q_M": 3.0, "Q_SF": 0.0, "Q_S": 1.0, "Q_C": 1.0, "Q_Y": 1.0, "Q_CB": 1.0,
             "Q_CV": 0.0, "Q_G": (1 / (1 + math.exp(-5))) ** 2}


@pytest.mark.parametrize("name", sorted(IDENTICAL))
def test_identical_inputs(name, triple):
    image = triple[0]
    got = evaluate(image, image, image, metrics=[name])[name]
    assert got == pytest.approx(IDENTICAL[name], abs=1e-6), name


def test_mi_of_identical_inputs_is_twice_the_entropy(triple):
    image = triple[0]
    values = evaluate(image, image, image, metrics=["MI", "EN"])
    assert values["MI"] == pytest.approx(2 * values["EN"])


@pytest.mark.parametrize("name", ["EN", "SD", "SF", "AG", "EI"])
def test_constant_image_has_no_information(name):
    flat = np.full((64, 64), 90, np.uint8)
    assert evaluate(flat, flat, flat, metrics=[name])[name] == pytest.approx(0.0, abs=1e-12)


SYMMETRIC = ["MI", "VIFF", "VIFP", "SCD", "Qabf", "Nabf", "SSIM", "MS_SSIM", "PSNR", "RMSE", "MSE", "CC", "CE",
             "Qcb", "Qcv", "FMI_pixel", "FMI_dct", "FMI_w", "Q_MI", "Q_TE", "Q_NCIE", "Q_G", "Q_M", "Q_SF", "Q_P",
             "Q_S", "Q_Y", "Q_CV", "Q_CB"]  # not Q_C: its weight is clipped to 0 below and to 1 above


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric_in_the_sources(name, triple):
    ir, vis, fused = triple
    a = evaluate(ir, vis, fused, metrics=[name])[name]
    b = evaluate(vis, ir, fused, metrics=[name])[name]
    assert a == pytest.approx(b, rel=1e-6, abs=1e-9)


RANGES = {"EN": (0, 8), "MI": (0, 16), "FMI_pixel": (0, 1), "FMI_dct": (0, 1), "FMI_w": (0, 1), "VIFF": (0, 1.5),
          "VIFP": (0, 2.5), "SCD": (-2, 2), "Qabf": (0, 1), "Nabf": (0, 1), "SSIM": (-1, 1), "MS_SSIM": (0, 1),
          "RMSE": (0, 255), "MSE": (0, 65025), "CC": (-1, 1), "CE": (0, 8), "Qcb": (0, 1), "SD": (0, 127.5),
          "Q_MI": (0, 2), "Q_NCIE": (0, 1), "Q_G": (0, 1), "Q_M": (0, 3), "Q_SF": (-1, 10), "Q_P": (-1, 1),
          "Q_S": (-1, 1), "Q_C": (0, 1), "Q_Y": (-1, 1), "Q_CB": (0, 1), "Q_CV": (0, 1e6)}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_range(name, triple):
    lo, hi = RANGES[name]
    value = evaluate(*triple, metrics=[name])[name]
    assert lo <= value <= hi, (name, value)


@pytest.mark.parametrize("name", list(METRICS))
def test_dtype_invariance(name, triple):
    as_uint8 = evaluate(*triple, metrics=[name])[name]
    as_float = evaluate(*(t.astype(np.float32) / 255 for t in triple), metrics=[name])[name]
    as_uint16 = evaluate(*(t.astype(np.uint16) * 257 for t in triple), metrics=[name], high_bit_rule="full")[name]
    assert as_float == pytest.approx(as_uint8, rel=1e-9) and as_uint16 == pytest.approx(as_uint8, rel=1e-9)


@pytest.mark.parametrize("name", ["SSIM", "MS_SSIM", "VIFF", "VIFP", "Qcb", "Qcv", "FMI_pixel", "SF", "AG"])
def test_too_small_images_raise_clearly(name):
    tiny = np.zeros((2, 2), np.uint8) if name not in ("SF", "AG") else np.zeros((1, 5), np.uint8)
    with pytest.raises(ContrafuseError, match="too small"):
        evaluate(tiny, tiny, tiny, metrics=[name])


def test_the_table_declares_every_metric_fully():
    for info in METRICS.values():
        assert info.reference and info.value_range and callable(info.standard)
    # the 13 metrics of VIFB's code, each once (its published table's columns)
    assert sorted(VIFB_COLUMNS) == ["Avg_gradient", "Cross_entropy", "Edge_intensity", "Entropy", "Mutinf", "Psnr",
                                    "Qabf", "Qcb", "Qcv", "Rmse", "Spatial_frequency", "Ssim", "Variance"]


@pytest.mark.parametrize("name", list(METRICS))
def test_min_size_is_the_smallest_size_that_computes(name, rng):
    """The table's min_size admits an image of that side, on which the definition returns a finite
    number, and refuses one pixel less with a one-line error."""
    side = max(METRICS[name].min_size, 1)
    base = rng.random((side, side + 3)) * 200  # three noisy views of one image (independent noise
    images = [np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8) for _ in range(3)]
    value = evaluate(*images, metrics=[name])[name]  # would give MS-SSIM a negative term: NaN)
    assert math.isfinite(value), value
    if side > 1:
        small = [image[:-1] for image in images]
        with pytest.raises(ContrafuseError, match="too small"):
            evaluate(*small, metrics=[name])


def test_docs_describe_every_metric():
    text = (REPO / "docs" / "metrics.md").read_text()
    for name in METRICS:
        assert f"`{name}`" in text, name


def test_better_fusion_scores_better(triple):
    ir, vis, fused = triple
    noisy = np.clip(fused.astype(float) + np.random.default_rng(3).normal(0, 40, fused.shape), 0, 255).astype(np.uint8)
    good, bad = evaluate(ir, vis, fused), evaluate(ir, vis, noisy)
    for name in ("SSIM", "VIFF", "Qabf", "PSNR", "CC", "MS_SSIM"):
        assert good[name] > bad[name], name
    assert good["RMSE"] < bad["RMSE"]


def test_create_metric_and_unknown_names(triple):
    qabf = create_metric("Qabf", "vifb")
    assert qabf.info.higher_is_better and qabf.convention_used == "vifb"
    assert create_metric("VIFF", "vifb").convention_used == "standard"  # VIFB has no VIFF
    assert create_metric("EN")(*triple) == pytest.approx(evaluate(*triple, metrics=["EN"])["EN"])
    with pytest.raises(ContrafuseError, match="unknown metric"):
        create_metric("NOPE")
    with pytest.raises(ContrafuseError, match="unknown metric"):
        evaluate(*triple, metrics=["NOPE"])
    with pytest.raises(ContrafuseError, match="unknown convention"):
        evaluate(*triple, metrics=["EN"], convention="weird")


def test_evaluate_cli_csv_and_json(tmp_path, triple, capsys):
    ir, vis, fused = triple
    for name in ("a", "b"):
        save(tmp_path / "ir" / f"{name}.png", ir)
        save(tmp_path / "vis" / f"{name}.png", vis)
        save(tmp_path / "fused" / f"{name}.png", fused)
    out = tmp_path / "r.csv"
    args = ["evaluate", "--ir-dir", str(tmp_path / "ir"), "--vis-dir", str(tmp_path / "vis"),
            "--fused-dir", str(tmp_path / "fused"), "--metrics", "EN,SD,VIFF", "--convention", "vifb"]
    assert main(args + ["-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["image"] for r in rows] == ["a", "b", "mean", "std"]
    assert rows[0]["convention"] == "vifb; VIFF as standard"
    direct = evaluate(ir, vis, fused, metrics=["EN", "SD", "VIFF"], convention="vifb")
    assert float(rows[2]["SD"]) == pytest.approx(direct["SD"])
    assert main(args + ["-o", str(tmp_path / "r.json")]) == 0
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["definitions"]["VIFF"] == "standard" and len(payload["images"]) == 2
    (tmp_path / "fused" / "b.png").unlink()
    assert main(args + ["-o", str(tmp_path / "x.csv")]) == 2  # reported, and the rest evaluated
    assert "fail b: no fused image named b.*" in capsys.readouterr().err
    assert [r["image"] for r in csv.DictReader((tmp_path / "x.csv").open())] == ["a", "mean", "std"]


def _fmi_by_definition(src, fus):
    """Normalised FMI of one window pair, cell by cell over the l x l joint pmf (Haghighat 2011)."""
    def stats(x):
        x = (x - x.min()) / (x.max() - x.min()) if x.max() > x.min() else np.ones_like(x)
        pdf = x / x.sum()
        idx = np.arange(1, x.size + 1)
        sd = np.sqrt(max((idx**2 * pdf).sum() - (idx * pdf).sum() ** 2, 0))
        return pdf, np.cumsum(pdf), sd, -sum(p * np.log2(p) for p in pdf if p > 0)
    (f_pdf, f_cdf, f_sd, h_f), (a_pdf, a_cdf, a_sd, h_a) = stats(fus), stats(src)
    c = np.corrcoef(a_pdf, f_pdf)[0, 1] if a_pdf.std() > 0 and f_pdf.std() > 0 else 0.0
    outer_cdf = f_cdf[:, None] * a_cdf[None, :]
    bound = np.minimum(f_cdf[:, None], a_cdf[None, :]) if c >= 0 else np.maximum(f_cdf[:, None] + a_cdf[None, :] - 1, 0)
    corr = (bound - outer_cdf).sum() / (f_sd * a_sd)
    w = c / corr if c != 0 else 0.0
    pmf = np.diff(np.diff(bound, axis=0, prepend=0), axis=1, prepend=0)
    joint = w * pmf + (1 - w) * f_pdf[:, None] * a_pdf[None, :]
    h_joint = -sum(p * np.log2(abs(p)) for p in joint.ravel() if p != 0)
    return 2 * (h_a + h_f - h_joint) / (h_a + h_f)


@pytest.mark.parametrize("feature", ["pixel", "dct"])
def test_fmi_equals_the_cell_by_cell_definition(feature):
    """The fast FMI (Frechet-bound staircase, closed-form product entropy) against the l x l sum:
    ties, flat windows, both correlation signs and the equality shortcut all occur here."""
    from contrafuse.metrics.information import _windows, feature_mutual_information, fmi_features
    rng = np.random.default_rng(3)
    ir = rng.integers(0, 6, (9, 11)).astype(float) * 40
    vis = rng.integers(0, 256, (9, 11)).astype(float)
    fused = np.where(rng.random((9, 11)) < 0.5, ir, vis)
    fused[:4, :4] = 7.0  # a flat patch
    wa, wb, wf = (_windows(fmi_features(x, feature), 3) for x in (ir, vis, fused))
    expected = []
    for a, b, f in zip(wa, wb, wf):
        fmi_a = 1.0 if np.array_equal(a, f) else _fmi_by_definition(a, f)
        # the reference code compares the second source with the min-max normalised fused window
        # unless the first source matched
        f_cmp = f if np.array_equal(a, f) else ((f - f.min()) / (f.max() - f.min()) if f.max() > f.min() else np.ones(9))
        fmi_b = 1.0 if np.array_equal(b, f_cmp) else _fmi_by_definition(b, f)
        expected.append((fmi_a + fmi_b) / 2)
    assert feature_mutual_information(ir, vis, fused, feature) == pytest.approx(np.mean(expected), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Qw (Piella & Heijmans 2003), the metric added through the table

def test_qw_hand_computed_single_window():
    """One 2x2 window. IR (0 2 / 0 2): mean 1, variance 1; VIS (1 1 / 1 3): mean 1.5, variance 3/4;
    F (1 3 / 1 3): mean 2, variance 1. cov(IR, F) = 1 -> Q0 = 4*1*1*2 / (2*5) = 4/5;
    cov(VIS, F) = 1/2 -> Q0 = 4*(1/2)*1.5*2 / (1.75*6.25) = 96/175; lambda = 1 / (1 + 3/4) = 4/7;
    Qw = 4/7 * 4/5 + 3/7 * 96/175 = 848/1225."""
    from contrafuse.metrics.similarity import piella_qw
    ir, vis, fused = np.array([[0, 2], [0, 2]]), np.array([[1, 1], [1, 3]]), np.array([[1, 3], [1, 3]])
    assert piella_qw(ir, vis, fused, window=2) == pytest.approx(848 / 1225, abs=1e-12)


def test_qw_hand_computed_salience_weights():
    """Two 2x2 windows of a 2x3 image. Left: as above (salience max(1, 3/4) = 1, score 848/1225).
    Right: IR (2 0 / 2 0) mean 1, variance 1; F (3 1 / 3 1) mean 2, variance 1, cov(IR, F) = 1 ->
    Q0 = 4/5; VIS (1 5 / 3 1) mean 2.5, variance 11/4, cov(VIS, F) = -1/2 ->
    Q0 = 4*(-1/2)*2.5*2 / (3.75*10.25) = -10/38.4375; lambda = 1/3.75; salience 11/4.
    Qw = (1 * left + 2.75 * right) / 3.75."""
    from contrafuse.metrics.similarity import piella_qw
    ir = np.array([[0, 2, 0], [0, 2, 0]])
    vis = np.array([[1, 1, 5], [1, 3, 1]])
    fused = np.array([[1, 3, 1], [1, 3, 1]])
    left = 848 / 1225
    lam = 1 / 3.75
    right = lam * 4 / 5 + (1 - lam) * (-10 / 38.4375)
    expected = (1 * left + 2.75 * right) / (1 + 2.75)
    assert piella_qw(ir, vis, fused, window=2) == pytest.approx(expected, abs=1e-12)


def test_qw_properties(triple):
    ir, vis, fused = triple
    assert evaluate(ir, vis, ir, metrics=["Qw"])["Qw"] < 1
    flat = np.full_like(vis, 90)
    assert evaluate(ir, flat, ir, metrics=["Qw"])["Qw"] == pytest.approx(1.0)  # the only salient source, copied
    swapped = evaluate(vis, ir, fused, metrics=["Qw"])["Qw"]
    assert swapped == pytest.approx(evaluate(ir, vis, fused, metrics=["Qw"])["Qw"], rel=1e-12)
