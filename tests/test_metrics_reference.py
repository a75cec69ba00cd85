"""Metrics against independent references: the MATLAB toolbox's own values and the original MATLAB
code run under Octave (../shared/datasets/Toolbox_TNO_calib, calibration on a subset of its triples
so that CI takes seconds; ../shared/checks/run metrics-toolbox and metrics-octave cover them all),
scikit-image, and values worked out by hand."""

import csv
import math
import statistics
import warnings
from collections import defaultdict

import numpy as np
import pytest
from conftest import dataset

from contrafuse.metrics import METRICS, evaluate, evaluate_conventions, summarise

# ---------------------------------------------------------------------------------------------
# calibration: legacy = Tang's toolbox (5d6c43a), standard Liu metrics = Z. Liu's code

#: small triples of every size class (odd sides included: 06 is 575 x 475, 37 is 359 x 247)
TOOLBOX_IMAGES = ["05", "06", "08", "11", "34", "37"]
#: relative tolerance per metric; Qabf's last digits depend on MATLAB's summation order at
#: near-tied orientations (reproduced here, but allowed 5 % per image as the acceptance check does)
TOOLBOX_TOLERANCE = defaultdict(lambda: 1e-4, Qabf=5e-2)
OCTAVE_IMAGES = ["05", "06", "08"]
#: Q_C's covariance ratios in flat regions are rounding noise (4.2e-3 between two arithmetic orders)
OCTAVE_TOLERANCE = defaultdict(lambda: 1e-3, Q_C=1e-2)


def _reference(name):
    root = dataset("Toolbox_TNO_calib")
    values = defaultdict(dict)
    with open(root / name) as handle:
        for row in csv.DictReader(handle):
            values[(row["image"], row["method"])][row["metric"]] = float(row["value"])
    return root, values


def _triple(root, image, method):
    return root / "ir" / f"{image}.png", root / "vis" / f"{image}.png", root / "fused" / method / f"{image}.png"


def _check(values, expected, tolerance, where):
    for metric, reference in expected.items():
        got = values[metric]
        if math.isnan(reference):
            assert math.isnan(got), (where, metric, got)
            continue
        error = abs(got - reference) / max(abs(reference), 1e-12)
        assert error <= tolerance[metric], (where, metric, got, reference, error)


def test_legacy_equals_the_toolbox_on_its_own_results():
    """The toolbox's MATLAB results (xlsx, 11 metrics) for the five methods on the subset."""
    root, reference = _reference("toolbox_reference_metrics.csv")
    column = {"VIF": "VIFP"}  # the toolbox's VIF column is legacy VIFP
    checked = 0
    for (image, method), expected in sorted(reference.items()):
        if image not in TOOLBOX_IMAGES:
            continue
        values = evaluate(*_triple(root, image, method), metrics=[column.get(m, m) for m in expected],
                          convention="legacy")
        _check({m: values[column.get(m, m)] for m in expected}, expected, TOOLBOX_TOLERANCE, (image, method))
        checked += 1
    assert checked == len(TOOLBOX_IMAGES) * 5


def test_legacy_equals_the_toolbox_code_under_octave():
    """Nabf, SSIM (MEF-SSIM), MS_SSIM and FMI_dct: the toolbox's .m files run under Octave."""
    root, reference = _reference("toolbox_extra_reference_metrics.csv")
    checked = 0
    for (image, method), expected in sorted(reference.items()):
        if image in OCTAVE_IMAGES:
            values = evaluate(*_triple(root, image, method), metrics=list(expected), convention="legacy")
            _check(values, expected, OCTAVE_TOLERANCE, (image, method))
            checked += len(expected)
    assert checked == 3 * 3 * 2 + 2  # three metrics on six triples, FMI_dct on two


def test_liu2012_metrics_equal_liu_code_under_octave():
    """The twelve metrics of Liu et al. (TPAMI 2012), Z. Liu's fusionAssess.m run under Octave."""
    root, reference = _reference("liu2012_reference_metrics.csv")
    checked = 0
    for (image, method), expected in sorted(reference.items()):
        if image in OCTAVE_IMAGES:
            assert len(expected) == 12
            values = evaluate(*_triple(root, image, method), metrics=list(expected))
            _check(values, expected, OCTAVE_TOLERANCE, (image, method))
            checked += 1
    assert checked == 6


# ---------------------------------------------------------------------------------------------
# standard against scikit-image


@pytest.fixture(scope="module")
def views():
    """Three noisy views of one smooth image (uint8, 120 x 130)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:120, :130]
    base = 120 + 70 * np.sin(xx / 11) * np.cos(yy / 7)
    return [np.clip(base + rng.normal(0, s, base.shape), 0, 255).astype(np.uint8) for s in (15, 25, 10)]


def test_ssim_and_psnr_equal_scikit_image(views):
    """With both sources equal, the two-source averages are skimage's single-pair values (Wang's
    Gaussian window: gaussian_weights, sigma 1.5, population covariance)."""
    metrics = pytest.importorskip("skimage.metrics")
    a, _, f = views
    ours = evaluate(a, a, f, metrics=["SSIM", "PSNR", "MSE", "RMSE"])
    assert ours["SSIM"] == pytest.approx(metrics.structural_similarity(
        a, f, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255), abs=1e-12)
    assert ours["PSNR"] == pytest.approx(metrics.peak_signal_noise_ratio(a, f, data_range=255), rel=1e-12)
    assert ours["MSE"] == pytest.approx(metrics.mean_squared_error(a, f), rel=1e-12)
    assert ours["RMSE"] == pytest.approx(math.sqrt(ours["MSE"]), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# legacy quirks, worked out by hand


def test_legacy_psnr_and_mse_are_on_unit_intensities(views):
    """PSNR_evaluation: 20 log10(255 / sqrt(MSE)) with MSE of im2double images, i.e. the textbook
    PSNR plus 20 log10(255) = 48.13 dB; MSE_evaluation: the textbook MSE / 255^2."""
    standard = evaluate(*views, metrics=["PSNR", "MSE"])
    legacy = evaluate(*views, metrics=["PSNR", "MSE"], convention="legacy")
    assert legacy["MSE"] == pytest.approx(standard["MSE"] / 255**2, rel=1e-12)
    assert legacy["PSNR"] == pytest.approx(standard["PSNR"] + 20 * math.log10(255), rel=1e-12)


def test_legacy_mi_merges_the_two_top_levels():
    """Hab.m indexes its joint table by uint8 value + 1, which saturates: 254 and 255 share a bin.
    F = (254, 255) against a source (0, 0): H(F) = 1 bit, H(S) = 0, but the joint table has one
    cell, so MI(S, F) = 0 + 1 - 0 = 1 bit (standard: H(F) + H(S) - H(S, F) = 1 + 0 - 1 = 0)."""
    source = np.zeros((1, 2), np.uint8)
    fused = np.array([[254, 255]], np.uint8)
    assert evaluate(source, source, fused, metrics=["MI"], convention="legacy")["MI"] == pytest.approx(2.0)
    assert evaluate(source, source, fused, metrics=["MI"])["MI"] == pytest.approx(0.0)


def test_legacy_vif_saturates_uint8_products(views):
    """vifp_mscale on uint8: ref .* ref saturates at 255. On images below 16 no product saturates
    and legacy VIF-P equals the standard one; on ordinary images it does not."""
    dark = [v // 16 for v in views]
    assert evaluate(*dark, metrics=["VIFP"], convention="legacy")["VIFP"] == pytest.approx(
        evaluate(*dark, metrics=["VIFP"])["VIFP"], rel=1e-12)
    assert abs(evaluate(*views, metrics=["VIFP"], convention="legacy")["VIFP"]
               - evaluate(*views, metrics=["VIFP"])["VIFP"]) > 0.05


def test_legacy_sf_averages_each_difference_over_its_own_size():
    """F = [0 255 0; 0 255 0] / 255 on 0..1: row differences (2 x 2 values 1) mean 1, column
    differences (1 x 3, all 0) mean 0, SF = 1."""
    fused = np.array([[0, 255, 0], [0, 255, 0]], np.uint8)
    assert evaluate(fused, fused, fused, metrics=["SF"], convention="legacy")["SF"] == pytest.approx(1.0)


def test_matlab_sobel_edges_of_a_step():
    """edge(I) on a vertical step: b = 0.25 on the two columns beside it, cutoff 4 mean(b) = 1/15;
    thinning keeps the column whose right neighbour is smaller (b(r,c) > b(r,c+1) strictly), the
    bright side."""
    from contrafuse.metrics.information import matlab_sobel_edges
    step = np.zeros((6, 30))
    step[:, 13:] = 1
    edges = matlab_sobel_edges(step)
    assert edges[:, 13].all() and edges.sum() == 6


def test_dmey102_is_the_orthogonal_filter_bank_and_pywt_dwt2_agrees():
    """The 102-tap discrete Meyer filters: low-pass sums to sqrt 2, high-pass to 0, and the FMI
    wavelet features are PyWavelets' dwt2 with them (symmetric extension, MATLAB's 'sym')."""
    import pywt
    from contrafuse.metrics.information import _DMEY, fmi_features
    lo, hi = np.array(_DMEY.dec_lo), np.array(_DMEY.dec_hi)
    assert len(lo) == 102 and lo.sum() == pytest.approx(math.sqrt(2)) and hi.sum() == pytest.approx(0, abs=1e-5)
    assert (lo ** 2).sum() == pytest.approx(1, abs=1e-5)
    image = np.random.default_rng(0).random((40, 50)) * 255
    ca, (ch, cv, cd) = pywt.dwt2(image, _DMEY, mode="symmetric")
    assert ca.shape == ((40 + 101) // 2, (50 + 101) // 2)
    block = np.block([[ca, ch], [cv, cd]])
    assert np.array_equal(fmi_features(image, "wavelet"), (block - block.min()) / (block.max() - block.min()))


@pytest.mark.parametrize("shape", [(3, 5), (40, 50), (101, 103), (130, 104)])
def test_dwt2_symmetric_equals_pywt_bit_for_bit(shape):
    """Our column-at-once DWT sums each output in PyWavelets' order: the same bits as pywt.dwt2, for
    images narrower than the 102-tap filter (reflected several times) and wider, odd and even."""
    import pywt
    from contrafuse.metrics.information import _DMEY, dwt2_symmetric
    image = np.random.default_rng(1).random(shape) * 255
    for wavelet in (_DMEY, pywt.Wavelet("db3")):
        ca, details = pywt.dwt2(image, wavelet, mode="symmetric")
        ours_ca, ours_details = dwt2_symmetric(image, wavelet)
        assert np.array_equal(ours_ca, ca) and all(np.array_equal(o, r) for o, r in zip(ours_details, details))


@pytest.mark.parametrize("mode", ["valid", "same", "replicate"])
def test_separable_filter2_equals_ndimage_bit_for_bit(mode):
    """The Gaussian filter behind the SSIM/VIF/Q_P moments against scipy.ndimage.correlate1d down
    the columns and along the rows (zero padding, or replicated borders), 'valid' cropped."""
    from scipy import ndimage

    from contrafuse.metrics.common import gaussian_1d, separable_filter2
    image = np.random.default_rng(2).random((37, 41)) * 255
    for size, sigma in ((11, 1.5), (17, 17 / 5), (3, 0.6)):
        g = gaussian_1d(size, sigma)
        border = "nearest" if mode == "replicate" else "constant"
        expected = ndimage.correlate1d(ndimage.correlate1d(image, g, axis=0, mode=border), g, axis=1, mode=border)
        if mode == "valid":
            expected = expected[size // 2:-(size // 2), size // 2:-(size // 2)]
        assert np.array_equal(separable_filter2(g, image, mode), expected)


def test_box_sums_are_the_window_sums():
    from contrafuse.metrics.common import box_sums
    image = np.random.default_rng(3).integers(0, 256, (13, 17)).astype(np.float64) ** 2
    expected = np.lib.stride_tricks.sliding_window_view(image, (8, 8)).sum(axis=(2, 3))
    assert np.array_equal(box_sums(image, 8), expected)


def test_qw_summed_area_tables_equal_the_two_pass_moments(views):
    """Q0 is scale-invariant; integer images take the summed-area-table path, the same images / 4
    the two-pass one: the same Qw."""
    from contrafuse.metrics.similarity import piella_qw
    ints = [v.astype(np.float64) for v in views]
    assert piella_qw(*ints) == pytest.approx(piella_qw(*(x / 4 for x in ints)), rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Liu et al. metrics, worked out by hand


def test_q_sf_is_zero_when_the_fused_image_copies_the_only_textured_source(views):
    """rSFe = (SF_F - SF_R) / SF_R: with B flat, every directional gradient of the reference is A's,
    so F = A gives 0; a blurred F loses frequency (negative)."""
    a = views[0]
    flat = np.full_like(a, 80)
    assert evaluate(a, flat, a, metrics=["Q_SF"])["Q_SF"] == pytest.approx(0.0, abs=1e-12)
    blurred = ((a[:, :-1].astype(int) + a[:, 1:]) // 2).astype(np.uint8)
    assert evaluate(a[:, :-1], flat[:, :-1], blurred, metrics=["Q_SF"])["Q_SF"] < 0


def test_q_ncie_of_identical_images():
    """NCC(A, A) = H(A) / 8 for every pair; the 3 x 3 matrix of ones off the diagonal times h has
    eigenvalues 1 + 2h, 1 - h, 1 - h. A two-level image with equal halves: H = 1 bit, h = 1/8."""
    image = np.zeros((8, 8), np.uint8)
    image[:, 4:] = 255
    h = 1 / 8
    r = np.array([1 + 2 * h, 1 - h, 1 - h])
    expected = 1 + (r / 3 * np.log2(r / 3)).sum() / 8
    assert evaluate(image, image, image, metrics=["Q_NCIE"])["Q_NCIE"] == pytest.approx(expected, rel=1e-12)


def test_q_te_tsallis_of_independent_halves():
    """Tsallis MI with q: sum h^q (m1 m2)^(1-q). A = left/right halves, B = top/bottom halves,
    F = A: every table has equal marginals (1/2, 1/2). I(A,F): two cells of 1/2 ->
    sum = 2 (1/2)^q (1/4)^(1-q); I(B,F) and I(A,B): four cells of 1/4 -> 4 (1/4)^q (1/4)^(1-q) = 1,
    so those are 0; H(A) = H(B) = 1 bit. Q_TE = I(A,F) / (1 + 1 + 0)."""
    q = 0.43137
    a = np.zeros((4, 4), np.uint8)
    a[:, 2:] = 255
    b = np.zeros((4, 4), np.uint8)
    b[2:] = 255
    i_af = (1 - 2 * 0.5**q * 0.25 ** (1 - q)) / (1 - q)
    assert evaluate(a, b, a, metrics=["Q_TE"])["Q_TE"] == pytest.approx(i_af / 2, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# degenerate inputs: the reference's answer or NaN, and summarise() says what it left out


def test_degenerate_inputs_give_the_reference_answer_or_nan(views):
    a, b, f = views
    flat = np.full_like(a, 90)
    values = evaluate(a, flat, f, metrics=["Qcb", "Qcv", "Q_CB", "Q_CV", "Q_MI", "VIFP"])
    # normalize1 divides 0 by 0 for a constant non-zero image; vifp_mscale of a flat reference is 0/0
    assert all(math.isnan(v) for v in values.values()), values
    noise = np.random.default_rng(0).integers(0, 256, (200, 200)).astype(np.uint8)
    other = np.random.default_rng(1).integers(0, 256, (200, 200)).astype(np.uint8)
    # the negative image: negative contrast-structure terms have no real power (MATLAB: complex)
    assert math.isnan(evaluate(noise, noise, 255 - noise, metrics=["MS_SSIM"])["MS_SSIM"])
    assert evaluate(noise, other, (noise // 2 + 100).astype(np.uint8), metrics=["CE"])["CE"] >= 0


def test_cross_entropy_cannot_go_negative():
    """Source: half 0, half 5; fused: 60 % 0, 40 % 1. The only shared level is 0; VIFB's sum over
    shared levels gives 0.5 log2(0.5 / 0.6) < 0, the renormalised one 1 log2(1 / 1) = 0."""
    from contrafuse.metrics import vifb
    source = np.array([[0] * 5 + [5] * 5], np.uint8)
    fused = np.array([[0] * 6 + [1] * 4], np.uint8)
    assert vifb.cross_entropy(source, source, fused) == pytest.approx(0.5 * math.log2(0.5 / 0.6))
    assert evaluate(source, source, fused, metrics=["CE"])["CE"] == pytest.approx(0.0, abs=1e-15)


def test_summarise_counts_what_it_leaves_out():
    rows = [{"Qcb": 0.5, "EN": 7.0}, {"Qcb": math.nan, "EN": 6.0}, {"Qcb": 0.7, "EN": math.inf}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = summarise(rows, ["Qcb", "EN"])
    mean, std = summary
    assert mean == summary.mean and std == summary.std
    assert summary.dropped == {"Qcb": 1, "EN": 1}
    assert mean["Qcb"] == pytest.approx(0.6) and mean["EN"] == pytest.approx(6.5)
    assert any("Qcb 1 of 3" in str(w.message) for w in caught)


def test_all_conventions_at_once_equal_one_at_a_time():
    """Shared intermediates and definitions across conventions change no value."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:180, :190]
    base = 120 + 70 * np.sin(xx / 13) * np.cos(yy / 9)
    views = [np.clip(base + rng.normal(0, s, base.shape), 0, 255).astype(np.uint8) for s in (15, 25, 10)]
    together = evaluate_conventions(*views)
    for convention, values in together.items():
        alone = evaluate(*views, convention=convention)
        assert set(values) == set(METRICS)
        for name, value in values.items():
            assert value == pytest.approx(alone[name], rel=1e-12, nan_ok=True), (convention, name)


# ---------------------------------------------------------------------------------------------
# standard against numpy / scikit-image computations of the textbook definitions


def test_en_sd_cc_scd_equal_independent_computations(views):
    """EN: scikit-image's Shannon entropy (bits); SD: the standard library's population standard
    deviation; CC, SCD: numpy's Pearson correlation."""
    measure = pytest.importorskip("skimage.measure")
    a, b, f = views
    ours = evaluate(a, b, f, metrics=["EN", "SD", "CC", "SCD"])
    assert ours["EN"] == pytest.approx(measure.shannon_entropy(f, base=2), rel=1e-12)
    assert ours["SD"] == pytest.approx(statistics.pstdev(int(v) for v in f.ravel()), rel=1e-12)
    a, b, f = (x.astype(np.float64).ravel() for x in views)
    assert ours["CC"] == pytest.approx((np.corrcoef(a, f)[0, 1] + np.corrcoef(b, f)[0, 1]) / 2, rel=1e-12)
    assert ours["SCD"] == pytest.approx(np.corrcoef(f - b, a)[0, 1] + np.corrcoef(f - a, b)[0, 1], rel=1e-12)


def test_ms_ssim_halving_repeats_the_last_row_and_column():
    """Wang's msssim.m filters with ones(2)/4 and 'symmetric' borders, then keeps odd pixels: for a
    3 x 3 image the last block is the bottom-right pixel itself, the others 2 x 2 or 2 x 1 means."""
    from contrafuse.metrics.similarity import halve
    x = np.arange(9, dtype=float).reshape(3, 3)
    assert np.array_equal(halve(x), [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8]])


def test_intermediates_are_computed_once_across_metrics_and_threads(views, monkeypatch):
    """SSIM (IR-F, VIS-F) and Q_S (IR-VIS, F-IR, F-VIS) need Gaussian means of 3 images and 6
    products: 9 filterings in all when shared, 25 if each metric filtered on its own (2 threads)."""
    import contrafuse.metrics.similarity as similarity
    calls = []
    real = similarity.separable_filter2

    def counting(kernel, image, mode="same"):
        calls.append(image.shape)
        return real(kernel, image, mode)

    monkeypatch.setattr(similarity, "separable_filter2", counting)
    monkeypatch.setenv("CONTRAFUSE_METRIC_THREADS", "2")
    evaluate(*views, metrics=["SSIM", "Q_S"])
    assert len(calls) == 9
