"""CoCoNet: VGG-19 weights and folding, network shape handling, losses, training step."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import TinyRecipe, save
from torch.nn import functional as F

from contrafuse.errors import ContrafuseError
from contrafuse.losses.coconet import (
    CoupledContrastiveLoss,
    SelfAdaptiveLoss,
    average_gradient,
    entropy_bits,
    pooled_entropy_bits,
    self_adaptive_weights,
    sobel_gradient,
)
from contrafuse.losses.ssim import box_profile, gaussian_profile, ssim, ssim_map, window_mean
from contrafuse.nn.coconet import CoCoNet
from contrafuse.nn.vgg import CAFFE_MEAN_BGR, LOSS_PLAN, VGG19
from contrafuse.weights import VGG19_H5_SHA256, fetch_vgg19, vgg19_state


@pytest.fixture(scope="module")
def vgg_state():
    path = fetch_vgg19()  # cached by .ci/run; downloads (and sha256-checks) otherwise
    from safetensors import safe_open
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata()["sha256"] == VGG19_H5_SHA256
    return vgg19_state()


def test_real_vgg_weights_are_loaded(vgg_state):
    assert vgg_state["conv1_1.weight"].shape == (64, 3, 3, 3)
    assert len([k for k in vgg_state if k.endswith(".weight")]) == 16
    # ImageNet-trained first-layer filters are far from an initialisation's scale
    assert 0.1 < vgg_state["conv1_1.weight"].abs().max() < 2.0


def test_folded_grey_vgg_equals_caffe_vgg_away_from_border(vgg_state):
    torch.manual_seed(0)
    grey = torch.rand(1, 1, 48, 48) * 2 - 1
    folded = VGG19(LOSS_PLAN[:5], ("conv1_1", "conv2_1"), grey=True, state=vgg_state)
    original = VGG19(LOSS_PLAN[:5], ("conv1_1", "conv2_1"), grey=False, state=vgg_state)
    pixels = (grey + 1) * 127.5
    mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    caffe = pixels.repeat(1, 3, 1, 1) - mean        # grey replicated to B, G, R, mean removed
    for a, b in zip(folded(grey), original(caffe)):
        border = 4
        inner_a, inner_b = a[..., border:-border, border:-border], b[..., border:-border, border:-border]
        assert torch.allclose(inner_a, inner_b, rtol=1e-4, atol=1e-3)


def test_torchvision_fold_is_the_authors_input_on_torchvisions_scale(vgg_state):
    """``vgg_grey: torchvision``: the grey value g enters as torchvision-normalised input of the
    luminance-mixed colour image (0.299 g, 0.587 g, 0.114 g); torchvision's normalised channel t is
    Caffe's 255 * std * t, and the features are divided by 255 * mean(std) (0.229, 0.224, 0.225)."""
    torch.manual_seed(0)
    grey = torch.rand(1, 1, 48, 48) * 2 - 1
    folded = VGG19(LOSS_PLAN[:5], ("conv1_1", "conv2_1"), grey=True, state=vgg_state, fold="torchvision")
    original = VGG19(LOSS_PLAN[:5], ("conv1_1", "conv2_1"), grey=False, state=vgg_state)
    std_bgr, luma_bgr = (0.225, 0.224, 0.229), (0.114, 0.587, 0.299)
    caffe = torch.cat([grey * 255 * s * l for s, l in zip(std_bgr, luma_bgr)], 1)
    feature_scale = 255 * (0.229 + 0.224 + 0.225) / 3
    for a, b in zip(folded(grey), original(caffe)):
        inner_a, inner_b = a[..., 4:-4, 4:-4], b[..., 4:-4, 4:-4] / feature_scale
        assert torch.allclose(inner_a, inner_b, rtol=1e-4, atol=1e-4)


def test_vgg_fold_travels_with_exported_weights(vgg_state):
    """Weights trained with the torchvision fold load into a default-built network and fuse the
    same; weights without an output scale (trained before it existed) keep the factor 1."""
    torch.manual_seed(0)
    trained = CoCoNet(vgg_state=vgg_state, vgg_fold="torchvision").eval()
    default = CoCoNet(vgg_state=vgg_state).eval()
    assert float(default.vgg.output_scale) == 1.0 and float(trained.vgg.output_scale) < 0.02
    default.load_state_dict(trained.trainable_state_dict(), strict=False)
    x = torch.rand(1, 1, 32, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(default(x, -x), trained(x, -x))
    older = {k: v for k, v in trained.trainable_state_dict().items() if k != "vgg.output_scale"}
    fresh = CoCoNet(vgg_state=vgg_state)
    fresh.load_state_dict(older, strict=False)
    assert float(fresh.vgg.output_scale) == 1.0


def test_parameter_count_against_paper(vgg_state):
    model = CoCoNet(vgg_state=vgg_state)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    vgg = sum(p.numel() for p in model.vgg.parameters())
    assert vgg == 2_324_416                       # grey VGG-19 up to conv3_4
    assert abs((trainable + vgg) / 1e6 - 9.13) < 0.05   # Table 4: 9.13 M


@pytest.mark.parametrize("size", [(17, 23), (33, 64), (64, 41)])
def test_any_size_round_trips(vgg_state, size):
    model = CoCoNet(vgg_state=vgg_state).eval()
    x = torch.rand(1, 1, *size) * 2 - 1
    with torch.no_grad():
        out = model(x, -x)
    assert out.shape == x.shape and out.abs().max() <= 1


def test_gradients_reach_every_trainable_parameter_and_not_vgg(vgg_state):
    torch.manual_seed(0)
    model = CoCoNet(vgg_state=vgg_state)
    with torch.no_grad():  # the attention scales start at 0; open them so their inputs matter too
        for module in model.mam.values():
            module.attention.scale.fill_(0.5)
    ir, vis = torch.rand(3, 1, 32, 32) * 2 - 1, torch.rand(3, 1, 32, 32) * 2 - 1
    mask = (torch.rand(3, 1, 32, 32) > 0.7).float()
    fused = model(ir, vis)
    loss = SelfAdaptiveLoss()(fused, ir, vis)["self_adaptive"]
    loss = loss + CoupledContrastiveLoss(VGG19(state=vgg_state))(fused, ir, vis, mask)["contrastive"]
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("vgg."):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_average_gradient_and_entropy_by_hand():
    # 0/1 checkerboard on [0, 1]: every neighbour differs by 1 -> AG = 1 + 1 = 2
    board = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(4, 4)[None, None] * 2 - 1
    assert average_gradient(board).item() == pytest.approx(2.0)
    # two grey levels, half the pixels each -> 1 bit
    assert entropy_bits(board).item() == pytest.approx(1.0)


@pytest.mark.parametrize("size,padding", [(11, 5), (16, 8), (16, 0), (3, 1)])
def test_separable_window_mean_equals_the_2d_convolution(size, padding):
    # independent reference: conv2d with the outer-product window, zero padding
    torch.manual_seed(0)
    x = torch.rand(3, 1, 21, 34, dtype=torch.float64)
    profile = gaussian_profile(size, 1.5, dtype=torch.float64)
    window = (profile[:, None] * profile[None, :])[None, None]
    expected = F.conv2d(x, window, padding=padding)
    assert torch.allclose(window_mean(x, profile, padding), expected, atol=1e-12)
    box = box_profile(size, dtype=torch.float64)
    assert torch.allclose(window_mean(x, box, padding), F.conv2d(x, torch.full_like(window, 1 / size**2),
                                                                 padding=padding), atol=1e-12)


def test_ssim_by_hand():
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    # constant images a, b: mean term (2ab + c1) / (a^2 + b^2 + c1), variances zero -> structure term 1;
    # away from the border only (zero padding), so use a window that never reaches it: the centre pixel
    a, b, c1 = 0.6, 0.2, 1e-4
    center = ssim_map(torch.full((1, 1, 11, 11), a, dtype=torch.float64),
                      torch.full((1, 1, 11, 11), b, dtype=torch.float64),
                      gaussian_profile(11, dtype=torch.float64), c1, 9e-4, padding=0)
    assert center.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)


def test_self_adaptive_weights_by_hand():
    vis = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(4, 4)[None, None] * 2 - 1   # AG 2, EN 1
    ir = torch.zeros(1, 1, 8, 8)                                                     # AG 0, EN 0
    sigma, gamma = self_adaptive_weights(ir, vis, form="paper")
    assert sigma[0, 0].item() == pytest.approx(math.exp(2) / (math.exp(2) + 1))
    assert gamma[0, 0].item() == pytest.approx(math.exp(1) / (math.exp(1) + 1))
    sigma, gamma = self_adaptive_weights(ir, vis, form="code", t_ag=0.5, t_en=0.75)
    # normalised by the sum (2 + 0 and 1 + 0), divided by the temperature, soft-maxed
    assert sigma[0, 0].item() == pytest.approx(math.exp(2) / (math.exp(2) + 1))
    assert gamma[0, 0].item() == pytest.approx(math.exp(1 / 0.75) / (math.exp(1 / 0.75) + 1))
    assert torch.allclose(sigma.sum(1), torch.ones(1)) and torch.allclose(gamma.sum(1), torch.ones(1))


def test_authors_code_measures_by_hand():
    # a constant 8x8 patch at v: Sobel sees only the zero padding. The four corners give |3v| + |3v|,
    # the 24 other border pixels |4v| (the other direction cancels), the interior nothing.
    v = -0.5
    expected = (4 * 6 + 24 * 4) * abs(v) / 64 + 1e-5
    assert sobel_gradient(torch.full((1, 1, 8, 8), v)).item() == pytest.approx(expected)
    # pooled entropy: black, then white, then black: the histograms pooled so far hold one level
    # (0 bits), two equally often (1 bit), then two at 2:1; each entry also gets 3 x 1e-4
    batch = torch.stack([torch.full((1, 4, 4), x) for x in (-1.0, 1.0, -1.0)])
    two_to_one = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert pooled_entropy_bits(batch).tolist() == pytest.approx([3e-4, 1 + 3e-4, two_to_one + 3e-4])
    assert entropy_bits(batch).tolist() == pytest.approx([0.0, 0.0, 0.0])


def test_code_measures_weight_one_batch_ssim_by_the_mean_sigma():
    # sample 0: identical sources and output (both SSIMs 1, equal weights); sample 1: output = visible,
    # infrared elsewhere (SSIM_v 1, SSIM_r = s < 1, sigma_r = w). Per sample the SSIM term is
    # w (1 - s) / 2; the authors' code takes mean(sigma_r) (1 - mean SSIM_r) = (0.5 + w) / 2 (1 - s) / 2.
    torch.manual_seed(0)
    flat = torch.zeros(1, 1, 32, 32)
    vis = torch.cat([flat, torch.rand(1, 1, 32, 32) * 2 - 1])
    ir = torch.cat([flat, torch.rand(1, 1, 32, 32) * 0.2 - 0.5])
    fused = vis.clone()
    per_sample = SelfAdaptiveLoss(measures="per_sample")(fused, ir, vis)["ssim"]
    code = SelfAdaptiveLoss(measures="code")(fused, ir, vis)["ssim"]
    w = self_adaptive_weights(ir, vis, measures="code")[0][1, 1].item()
    w_per_sample = self_adaptive_weights(ir, vis)[0][1, 1].item()
    one_minus_s = 2 * per_sample.item() / w_per_sample
    assert code.item() == pytest.approx((0.5 + w) / 2 * one_minus_s / 2, rel=1e-5)
    with pytest.raises(ValueError, match="measures"):
        self_adaptive_weights(ir, vis, measures="sobel")


def test_contrastive_loss_prefers_the_positive(vgg_state):
    torch.manual_seed(1)
    loss = CoupledContrastiveLoss(VGG19(state=vgg_state))
    ir, vis = torch.rand(3, 1, 32, 32) * 2 - 1, torch.rand(3, 1, 32, 32) * 2 - 1
    mask = torch.zeros(3, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    as_positive = ir * mask + vis * (1 - mask)       # target region from IR, background from VIS
    as_negative = vis * mask + ir * (1 - mask)
    good, bad = loss(as_positive, ir, vis, mask), loss(as_negative, ir, vis, mask)
    assert good["target"] < bad["target"] and good["detail"] < bad["detail"]
    assert good["contrastive"].item() == pytest.approx(0.0, abs=1e-6)


def test_fixed_seed_reproduces_a_training_step(vgg_state):
    def one_step():
        torch.manual_seed(123)
        model = CoCoNet(vgg_state=vgg_state)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        ir, vis = torch.rand(2, 1, 24, 24) * 2 - 1, torch.rand(2, 1, 24, 24) * 2 - 1
        loss = SelfAdaptiveLoss()(model(ir, vis), ir, vis)["self_adaptive"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item(), model.out.weight.detach().clone()
    (l1, w1), (l2, w2) = one_step(), one_step()
    assert l1 == l2 and torch.equal(w1, w2)


def test_training_loop_checkpoints_and_resumes(tmp_path, monkeypatch):
    """Two steps in one go equal one step, a stop, and a resumed second step."""
    from contrafuse.train.loop import train

    cfg = {"method": "tiny", "lr": 0.01, "batch_size": 2, "seed": 0, "stages": [{"name": "s", "epochs": 1}]}
    straight = train(cfg, TinyRecipe(), out_dir=tmp_path / "a", max_steps=2)
    train(cfg, TinyRecipe(), out_dir=tmp_path / "b", max_steps=1)
    resumed = train(cfg, TinyRecipe(), out_dir=tmp_path / "b", resume=True, max_steps=1)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k]) for k in a)
    rows = (tmp_path / "b" / "log_s.csv").read_text().strip().splitlines()
    assert rows[0].startswith("stage,epoch,batch,step") and len(rows) == 3
    sessions = [json.loads(line) for line in (tmp_path / "b" / "sessions.jsonl").read_text().splitlines()]
    assert [s["step"] for s in sessions] == [0, 1]  # the start and the resume, with where each began
    assert all(s["machine"]["cores"] and s["device"] == "cpu" for s in sessions)

    # an interrupt (Ctrl-C, or SIGTERM via the CLI) during the third step keeps the two completed
    class Interrupted(TinyRecipe):
        calls = 0

        def step(self, model, batch, stage):
            Interrupted.calls += 1
            if Interrupted.calls == 3:
                raise KeyboardInterrupt
            return super().step(model, batch, stage)

    with pytest.raises(KeyboardInterrupt):
        train(cfg, Interrupted(), out_dir=tmp_path / "c")
    saved = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)
    assert saved["progress"]["step"] == 2 and all(torch.allclose(a[k], saved["model"][k]) for k in a)


def test_training_can_start_from_exported_weights(tmp_path):
    """``init_weights`` loads an exported model (fresh optimizer); ``start_epoch`` skips finished
    epochs, keeping the epoch numbering (and so the batch order) of the original run."""
    from safetensors.torch import save_file

    from contrafuse.train.loop import train

    start = {"weight": torch.full((1, 2, 3, 3), 0.25), "bias": torch.tensor([0.5])}
    save_file(start, str(tmp_path / "start.safetensors"))
    cfg = {"method": "tiny", "lr": 0.0, "batch_size": 2, "seed": 0, "init_weights": str(tmp_path / "start.safetensors"),
           "start_epoch": 1, "stages": [{"name": "s", "epochs": 2}]}
    out = train(cfg, TinyRecipe(), out_dir=tmp_path / "run")
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert torch.equal(saved["model"]["weight"], start["weight"])  # lr 0: the initial weights, loaded
    rows = (out / "log_s.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == 4 and all(row.split(",")[1] == "2" for row in rows)  # one epoch, numbered 2
    with pytest.raises(ContrafuseError, match="init_weights"):
        train({**cfg, "init_weights": str(tmp_path / "missing.safetensors")}, TinyRecipe(), out_dir=tmp_path / "other")


def test_medical_patches_per_dataset(tmp_path):
    """``patches`` as a mapping cuts the paper's per-modality counts (Sec. 4.1.2: PET and SPECT)."""
    from contrafuse.train.recipes import CoCoNetRecipe

    recipe = CoCoNetRecipe()
    cfg = {"split": "harvard_medical", "patch_size": 64, "seed": 0,
           "patches": {"Harvard_MRI_PET_CDDFuse": 7, "Harvard_MRI_SPECT_CDDFuse": 5}}
    patches = recipe.stage_data(cfg, {"contrastive": False})
    assert patches.shape == (12, 2, 64, 64)
    assert patches.min() >= -1 and patches.max() <= 1
    cfg["patches"] = {"Harvard_MRI_PET_CDDFuse": 7}
    with pytest.raises(ContrafuseError, match="Harvard_MRI_SPECT_CDDFuse"):
        recipe.stage_data(cfg, {"contrastive": False})


def test_patch_seed_draws_the_patches_and_seed_the_rest():
    """``patch_seed`` fixes which patches are drawn independently of ``seed`` (which also draws the
    initial weights and the batch order): seed 1 with patch_seed 0 trains on seed 0's patches."""
    from contrafuse.train.recipes import CoCoNetRecipe

    recipe = CoCoNetRecipe()
    cfg = {"split": "harvard_medical", "patch_size": 32,
           "patches": {"Harvard_MRI_PET_CDDFuse": 4, "Harvard_MRI_SPECT_CDDFuse": 4}}
    stage = {"contrastive": False}
    seed0 = recipe.stage_data({**cfg, "seed": 0}, stage)
    assert not np.array_equal(seed0, recipe.stage_data({**cfg, "seed": 1}, stage))
    assert np.array_equal(seed0, recipe.stage_data({**cfg, "seed": 1, "patch_seed": 0}, stage))


def test_mask_pairs_fine_tunes_on_the_most_masked_pairs(tmp_path, monkeypatch):
    """``mask_pairs: N`` draws a contrastive stage's patches from the N training pairs whose masks
    cover most of the image (the paper fine-tunes on 18 masked images, Sec. 4.1.2). Each pair here is
    one flat grey level, so a patch tells which pair it came from."""
    from contrafuse.data.datasets import Pair
    from contrafuse.train import recipes

    coverage = {"a": 0.5, "b": 0.1, "c": 0.3, "d": 0.2}
    pairs = []
    for i, (name, share) in enumerate(coverage.items()):
        level = np.uint8(40 * (i + 1))
        for kind in ("ir", "vis"):
            save(tmp_path / kind / f"{name}.png", np.full((40, 40), level, np.uint8))
        mask = np.zeros((40, 40), np.uint8)
        mask[: int(40 * share)] = 255
        save(tmp_path / "masks" / f"{name}.png", mask)
        pairs.append(Pair("mine", name, tmp_path / "ir" / f"{name}.png", tmp_path / "vis" / f"{name}.png"))
    monkeypatch.setattr(recipes, "load_split", lambda _: {"train": pairs, "test": []})
    cfg = {"split": "mine", "patch_size": 16, "patches": 40, "seed": 0, "mask_dir": str(tmp_path / "masks")}
    recipe = recipes.CoCoNetRecipe()
    recipe._mask_kind = "infrared"

    def levels(stage):
        return sorted({round((float(v) + 1) * 127.5) for v in recipe.stage_data(cfg, stage)[:, 0, 0, 0]})

    assert levels({"contrastive": True, "mask_pairs": 2}) == [40, 120]  # pairs a (50 %) and c (30 %)
    assert levels({"contrastive": True}) == [40, 80, 120, 160]
    with pytest.raises(ContrafuseError, match="contrastive"):
        recipe.stage_data(cfg, {"contrastive": False, "mask_pairs": 2})
    with pytest.raises(ContrafuseError, match="4 training pairs"):
        recipe.stage_data(cfg, {"contrastive": True, "mask_pairs": 5})


def test_building_the_network_never_fetches_vgg19_and_loading_weights_fills_it(monkeypatch, tmp_path, vgg_state):
    """Building CoCoNet downloads nothing; loading the shipped weights copies the frozen VGG-19 from
    the ImageNet file, which the export leaves out, except conv1_1 (grey-folded: it comes from the
    weights) and the output scale."""
    from contrafuse import weights
    from contrafuse.models import MODEL_SPECS
    from contrafuse.nn import build_network

    calls = []
    monkeypatch.setenv("CONTRAFUSE_HOME", str(tmp_path))  # an empty cache: a fetch would be attempted
    monkeypatch.setattr(weights, "fetch_vgg19", lambda *a, **k: pytest.fail("building fetched VGG-19"))
    monkeypatch.setattr(weights, "vgg19_state", lambda auto_fetch=True: calls.append(1) or vgg_state)
    model = build_network("coconet")
    assert calls == []
    shipped = weights.model_weights(MODEL_SPECS["coconet"])
    weights.load_trained_weights(model, shipped)
    assert calls == [1]
    torch.testing.assert_close(model.vgg.convs["conv3_1"].weight, vgg_state["conv3_1.weight"], rtol=0, atol=0)
    exported = weights.read_state_dict(shipped, "weights")
    torch.testing.assert_close(model.vgg.convs["conv1_1"].weight, exported["vgg.convs.conv1_1.weight"].float(),
                               rtol=0, atol=0)
