"""The papers' ablation switches (issue 38): each one hand-checked on a small case, and the
defaults equal to the full models (CoCoNet Sec. 4.3, Tables 2-3, Figs. 15, 17, 18; CLF-Net
Tables VI and VIII)."""

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F

from contrafuse.errors import ContrafuseError
from contrafuse.losses.clfnet import CLFNetLoss, adaptive_patch_nce
from contrafuse.losses.coconet import CoupledContrastiveLoss, SelfAdaptiveLoss
from contrafuse.losses.ssim import ssim
from contrafuse.nn import to_unit
from contrafuse.nn.clfnet import CLFNet
from contrafuse.nn.coconet import ChannelAttention, CoCoNet, MultiLevelAttention
from contrafuse.nn.vgg import VGG19
from contrafuse.weights import vgg19_state


@pytest.fixture(scope="module")
def vgg_state():
    return vgg19_state()


@pytest.fixture(scope="module")
def loss_vgg(vgg_state):
    return VGG19(state=vgg_state)


def _pair(batch=2, size=24, seed=0):
    torch.manual_seed(seed)
    return torch.rand(batch, 1, size, size) * 2 - 1, torch.rand(batch, 1, size, size) * 2 - 1


# -- CoCoNet: MAM (Table 2, Table 3) ------------------------------------------------------------

def test_mam_level_without_attention_and_backbone_is_the_skip_connection():
    torch.manual_seed(0)
    f = torch.randn(2, 8, 6, 6)
    skip = MultiLevelAttention(8, attention=False, backbone=False)
    assert list(skip.parameters()) == [] and torch.equal(skip(f), f)           # Fig. 11a: identity
    attention_only = MultiLevelAttention(8, attention=True, backbone=False)    # Fig. 11b
    assert attention_only.merge is None
    assert torch.equal(attention_only(f), attention_only.attention(f))
    no_attention = MultiLevelAttention(8, attention=False, backbone=True)      # Fig. 11c
    ir, vis = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)
    assert torch.equal(no_attention(f, ir, vis), no_attention.merge(torch.cat([f, ir, vis], 1)))
    full = MultiLevelAttention(8)
    assert isinstance(full.attention, ChannelAttention) and full.merge.in_channels == 24


def test_network_switches_build_the_papers_variants(vgg_state, monkeypatch):
    full = CoCoNet(vgg_state=vgg_state)
    assert "mam_switches" not in full.state_dict()  # the shipped weights' layout is unchanged
    bare = CoCoNet(vgg_state=vgg_state, channel_attention=False, vgg_levels=[])   # w/o ca&vgg
    assert not any(isinstance(m, ChannelAttention) for m in bare.modules())
    assert all(level.merge is None for level in bare.mam.values())
    assert bare.mam_switches.tolist() == [0, 0, 0, 0]
    ir, vis = _pair()
    calls = []
    monkeypatch.setattr(type(bare.vgg), "forward", lambda self, x: calls.append(x) or None)
    bare(ir, vis)
    assert calls == []  # VGG-19 is not run when no level takes its features
    monkeypatch.undo()
    only_low = CoCoNet(vgg_state=vgg_state, vgg_levels=["low"])
    assert only_low.mam["64"].merge.in_channels == 3 * 64
    assert only_low.mam["128"].merge is None and only_low.mam["256"].merge is None
    assert only_low.mam_switches.tolist() == [1, 1, 0, 0]
    without_high = CoCoNet(vgg_state=vgg_state, vgg_levels=["high", "low"])  # order does not matter
    assert without_high.vgg_levels == ("low", "high") and without_high.mam["128"].merge is None
    with pytest.raises(ValueError, match="vgg_levels"):
        CoCoNet(vgg_state=vgg_state, vgg_levels=["top"])


def test_ablated_weights_rebuild_a_default_network(vgg_state, tmp_path):
    """An ablation's exported weights run through the shipped method (which builds the full
    network) because the weights carry their switches."""
    from safetensors.torch import save_file

    from contrafuse.weights import load_trained_weights

    torch.manual_seed(0)
    ablated = CoCoNet(vgg_state=vgg_state, channel_attention=False, vgg_levels=["middle"]).eval()
    path = tmp_path / "ablated.safetensors"
    save_file({k: v.contiguous() for k, v in ablated.trainable_state_dict().items()}, str(path))
    fresh = CoCoNet(vgg_state=vgg_state)
    load_trained_weights(fresh, path)
    assert fresh.channel_attention is False and fresh.vgg_levels == ("middle",)
    ir, vis = _pair(1, 32)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(ir, vis), ablated(ir, vis))


# -- CoCoNet: self-adaptive weights fixed (Fig. 15) --------------------------------------------------

@pytest.mark.parametrize("measures", ["per_sample", "code"])
def test_fixed_sigma_and_gamma_replace_the_self_adaptive_weights(measures):
    fused, ir = _pair(3, 24, seed=1)
    vis = torch.rand(3, 1, 24, 24) * 2 - 1
    f, r, v = (to_unit(t) for t in (fused, ir, vis))
    ssim_v, ssim_r = ssim(v, f), ssim(r, f)
    mse_v, mse_r = ((vis - fused) ** 2).mean(dim=(1, 2, 3)), ((ir - fused) ** 2).mean(dim=(1, 2, 3))
    if measures == "code":
        ssim_v, ssim_r = ssim_v.mean(), ssim_r.mean()
    fixed = SelfAdaptiveLoss(measures=measures, sigma=0.3, gamma=0.8)(fused, ir, vis)
    assert fixed["ssim"].item() == pytest.approx((0.3 * (1 - ssim_v) + 0.7 * (1 - ssim_r)).mean().item(), rel=1e-5)
    assert fixed["mse"].item() == pytest.approx((0.8 * mse_v + 0.2 * mse_r).mean().item(), rel=1e-5)
    adaptive = SelfAdaptiveLoss(measures=measures)(fused, ir, vis)
    only_sigma = SelfAdaptiveLoss(measures=measures, sigma=0.3)(fused, ir, vis)
    assert only_sigma["ssim"].item() == pytest.approx(fixed["ssim"].item()) and torch.equal(only_sigma["mse"], adaptive["mse"])
    assert SelfAdaptiveLoss(sigma=1.0)(fused, ir, vis)["ssim"].item() == pytest.approx((1 - ssim(v, f)).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        SelfAdaptiveLoss(sigma=1.5)


# -- CoCoNet: contrastive terms and sampling (Fig. 17) -----------------------------------------------

def _masked_case(batch=3):
    torch.manual_seed(1)
    ir, vis = torch.rand(batch, 1, 16, 16) * 2 - 1, torch.rand(batch, 1, 16, 16) * 2 - 1
    mask = torch.zeros(batch, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    return ir, vis, mask, ir * mask + vis * (1 - mask)


def test_target_or_detail_only_zeroes_the_other_term(loss_vgg):
    vgg = loss_vgg
    ir, vis, mask, _ = _masked_case()
    fused = (ir + vis) / 2
    full = CoupledContrastiveLoss(vgg)(fused, ir, vis, mask)
    target = CoupledContrastiveLoss(vgg, detail=False)(fused, ir, vis, mask)
    detail = CoupledContrastiveLoss(vgg, target=False)(fused, ir, vis, mask)
    none = CoupledContrastiveLoss(vgg, target=False, detail=False)(fused, ir, vis, mask)
    assert full["target"] > 0 and full["detail"] > 0
    assert target["detail"].item() == 0 and torch.equal(target["target"], full["target"])
    assert torch.equal(target["contrastive"], full["target"])
    assert detail["target"].item() == 0 and torch.equal(detail["contrastive"], full["detail"])
    assert none["contrastive"].item() == 0


def test_random_sampling_contrasts_with_samples_of_other_patches(loss_vgg):
    vgg = loss_vgg
    ir, vis, mask, ideal = _masked_case(4)
    paired = CoupledContrastiveLoss(vgg)(ideal, ir, vis, mask)
    assert paired["contrastive"].item() == pytest.approx(0.0, abs=1e-6)   # the anchor equals its own positives
    torch.manual_seed(5)
    unpaired = CoupledContrastiveLoss(vgg, sampling="random")(ideal, ir, vis, mask)
    assert unpaired["target"] > 0.05 and unpaired["detail"] > 0.05       # they are not its positives any more
    # by hand: the same loss with the sources replaced by the rows the random draw picked
    torch.manual_seed(5)
    rows = lambda: (torch.arange(4) + torch.randint(1, 4, (4,))) % 4      # noqa: E731
    o1_ir, o1_vis, o2_ir, o2_vis, ir_pos, vis_neg, vis_pos, ir_neg = (rows() for _ in range(8))
    for picked in (o1_ir, o2_ir, ir_pos, vis_pos):
        assert (picked != torch.arange(4)).all()
    rolled = [(ir.roll(1, 0), vis.roll(1, 0)), (ir.roll(2, 0), vis.roll(2, 0))]
    others = [(rolled[0][0][o1_ir], rolled[0][1][o1_vis]), (rolled[1][0][o2_ir], rolled[1][1][o2_vis])]
    loss = CoupledContrastiveLoss(vgg)
    inverse = 1 - mask
    target = loss._term(ideal * mask, ir[ir_pos] * mask, [vis[vis_neg] * mask] + [v * mask for _, v in others])
    detail = loss._term(ideal * inverse, vis[vis_pos] * inverse, [ir[ir_neg] * inverse] + [i * inverse for i, _ in others])
    assert unpaired["target"].item() == pytest.approx(target.item(), rel=1e-6)
    assert unpaired["detail"].item() == pytest.approx(detail.item(), rel=1e-6)
    with pytest.raises(ValueError, match="sampling"):
        CoupledContrastiveLoss(vgg, sampling="shuffled")


# -- CoCoNet: masks (Fig. 18) -------------------------------------------------------------------------

def test_saliency_mask_finds_a_salient_blob_without_a_warmth_test():
    from contrafuse.data.masks import saliency_mask

    rng = np.random.default_rng(0)
    image = 0.4 + 0.02 * rng.standard_normal((96, 128))
    image[40:60, 50:70] = 0.05  # a *cold* blob: salient, though no warm target
    mask = saliency_mask(np.clip(image, 0, 1))
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    assert mask[45:55, 55:65].mean() > 0.9 and mask[:20].mean() < 0.05


# -- CLF-Net: w/o PatchNCE (Table VI), negative strategies (Table VIII) ------------------------------

def test_patch_nce_with_other_negatives_by_hand():
    torch.manual_seed(0)
    b, s, k, tau = 2, 3, 4, 0.07
    q_ir, q_vis, k_ir, k_vis, n_ir, n_vis = (torch.randn(b, s, k) for _ in range(6))
    loss, use_ir = adaptive_patch_nce(q_ir, q_vis, k_ir, k_vis, tau, negatives=(n_ir, n_vis))
    qi, qv, ki, kv, ni, nv = (F.normalize(t.reshape(b * s, k), dim=1) for t in (q_ir, q_vis, k_ir, k_vis, n_ir, n_vis))
    expected = 0.0
    for n in range(b * s):
        ir_wins = float(qi[n] @ ki[n]) > float(qv[n] @ kv[n])
        assert bool(use_ir.flatten()[n]) == ir_wins
        q, positive, negatives = (qi[n], ki[n], ni) if ir_wins else (qv[n], kv[n], nv)
        logits = [float(q @ positive) / tau] + [float(q @ negatives[m]) / tau for m in range(b * s)]
        expected += -logits[0] + np.log(np.sum(np.exp(logits)))
    assert loss.item() == pytest.approx(expected / (b * s), rel=1e-5)


def _encoder_inputs(model):
    seen = {"ir_encoder": [], "vis_encoder": []}
    for name in seen:
        getattr(model, name).register_forward_hook(lambda m, args, out, name=name: seen[name].append(args[0]))
    return seen


@pytest.mark.parametrize("strategy", ["a", "b", "c"])
def test_negative_strategies_feed_the_encoders_as_the_paper_says(strategy, monkeypatch):
    torch.manual_seed(0)
    model = CLFNet()
    ir, vis = _pair(2, 20, seed=2)
    fused = model(ir, vis).detach()
    seen = _encoder_inputs(model)
    handed = {}
    import contrafuse.losses.clfnet as clfnet_losses
    original = clfnet_losses.adaptive_patch_nce

    def spy(q_ir, q_vis, k_ir, k_vis, tau, negatives=None):
        handed.update(keys=(k_ir, k_vis), negatives=negatives)
        return original(q_ir, q_vis, k_ir, k_vis, tau, negatives)

    monkeypatch.setattr(clfnet_losses, "adaptive_patch_nce", spy)
    CLFNetLoss(model, samples=8, negatives=strategy)(fused, ir, vis)
    through_ir = [x for x in seen["ir_encoder"]]
    if strategy == "b":  # (b): the visible image through the infrared encoder, and vice versa
        assert any(torch.equal(x, vis) for x in through_ir)
        assert any(torch.equal(x, ir) for x in seen["vis_encoder"])
        assert handed["negatives"][0].shape == handed["keys"][0].shape
    else:                # (a), (c): each source only through its own encoder
        assert not any(torch.equal(x, vis) for x in through_ir)
        assert not any(torch.equal(x, ir) for x in seen["vis_encoder"])
    if strategy == "a":  # (a): the other source's own keys are the negatives
        assert handed["negatives"][0] is handed["keys"][1] and handed["negatives"][1] is handed["keys"][0]
    if strategy == "c":
        assert handed["negatives"] is None
    with pytest.raises(ValueError, match="negatives"):
        CLFNetLoss(model, negatives="d")


def test_without_patch_nce_only_ssim_trains():
    """Table VI's w/o PatchNCE, as the paper made it: lambda_1 = 0."""
    torch.manual_seed(0)
    model = CLFNet()
    ir, vis = _pair(2, 20, seed=3)
    out = CLFNetLoss(model, samples=8, lambda_nce=0.0)(model(ir, vis), ir, vis)
    assert out["patch_nce"].item() > 0 and out["total"].item() == out["ssim"].item()
    out["total"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.head.parameters())


# -- configs --------------------------------------------------------------------------------------------

def _write(tmp_path, base, change):
    from pathlib import Path

    cfg = {**yaml.safe_load((Path(__file__).parents[1] / "configs" / base).read_text()), **change}
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("base, change, fragment", [
    ("coconet_tno.yaml", {"mam": {"vgg_levels": ["top"]}}, "mam.vgg_levels must list"),
    ("coconet_tno.yaml", {"mam": {"vgg_levels": ["low", "low"]}}, "mam.vgg_levels must list"),
    ("coconet_tno.yaml", {"mam": {"attention": False}}, "unknown key mam.'attention'"),
    ("coconet_tno.yaml", {"mam": {"channel_attention": "no"}}, "mam.channel_attention must be bool"),
    ("coconet_tno.yaml", {"self_adaptive": {"sigma": 1.2}}, "self_adaptive.sigma must be at most 1"),
    ("coconet_tno.yaml", {"self_adaptive": {"gamma": -0.1}}, "self_adaptive.gamma must be at least 0"),
    ("coconet_tno.yaml", {"contrastive_loss": {"sampling": "shuffled"}}, "contrastive_loss.sampling must be one of"),
    ("coconet_tno.yaml", {"contrastive_loss": {"targets": False}}, "unknown key contrastive_loss.'targets'"),
    ("coconet_tno.yaml", {"masks": "detector"}, "masks must be one of"),
    ("clfnet_tno.yaml", {"negatives": "d"}, "negatives must be one of"),
])
def test_ablation_keys_are_validated(tmp_path, base, change, fragment):
    from contrafuse.train.config import load_config

    with pytest.raises(ContrafuseError) as error:
        load_config(_write(tmp_path, base, change))
    assert fragment in str(error.value) and "ablation.yaml" in str(error.value)


def test_recipes_pass_the_switches_on(tmp_path):
    from contrafuse.train.config import load_config
    from contrafuse.train.recipes import RECIPES

    cfg = load_config(_write(tmp_path, "coconet_tno.yaml", {
        "mam": {"channel_attention": False, "vgg_levels": ["low", "middle"]},
        "self_adaptive": {"sigma": 0.4}, "contrastive_loss": {"target": False, "sampling": "random"}}))
    recipe = RECIPES.get("coconet")()
    model = recipe.build_model(cfg)
    assert model.channel_attention is False and model.vgg_levels == ("low", "middle")
    assert recipe._self_adaptive.sigma == 0.4 and recipe._self_adaptive.gamma is None
    assert (recipe._contrastive.target, recipe._contrastive.detail, recipe._contrastive.sampling) == (False, True, "random")
    shipped = RECIPES.get("coconet")()
    shipped_model = shipped.build_model(load_config(_write(tmp_path, "coconet_tno.yaml", {})))
    assert shipped_model.vgg_levels == ("low", "middle", "high") and shipped_model.channel_attention
    assert (shipped._contrastive.target, shipped._contrastive.detail, shipped._contrastive.sampling) == (True, True, "paired")
    assert shipped._self_adaptive.sigma is None and shipped._self_adaptive.gamma is None
    clf = RECIPES.get("clfnet")()
    clf.build_model(load_config(_write(tmp_path, "clfnet_tno.yaml", {"negatives": "b"})))
    assert clf._loss.negatives == "b"
    clf.build_model(load_config(_write(tmp_path, "clfnet_tno.yaml", {})))
    assert clf._loss.negatives == "c"


def test_saliency_masks_fine_tune_on_the_pairs_the_detector_masks_pick(tmp_path, monkeypatch):
    """Fig. 18 changes only the masks: ``mask_pairs`` still picks the pairs by the automatic
    (detector) masks, while the patches carry the saliency masks."""
    from PIL import Image

    from contrafuse.data.datasets import Pair
    from contrafuse.train import recipes

    names = ["a", "b", "c", "d"]
    pairs = []
    for i, name in enumerate(names):
        for kind in ("ir", "vis"):
            (tmp_path / kind).mkdir(exist_ok=True)
            Image.fromarray(np.full((40, 40), 40 * (i + 1), np.uint8)).save(tmp_path / kind / f"{name}.png")
        pairs.append(Pair("mine", name, tmp_path / "ir" / f"{name}.png", tmp_path / "vis" / f"{name}.png"))

    def share_mask(shares):
        def mask(image):
            out = np.zeros(image.shape, np.float32)
            out[: int(40 * shares[round(float(image[0, 0]) * 255 / 40) - 1])] = 1
            return out
        return mask

    monkeypatch.setattr(recipes, "load_split", lambda _: {"train": pairs, "test": []})
    monkeypatch.setattr(recipes, "infrared_mask", share_mask([0.5, 0.1, 0.3, 0.2]))   # detector: a, c
    monkeypatch.setattr(recipes, "saliency_mask", share_mask([0.05, 0.9, 0.025, 0.8]))  # saliency alone: b, d
    cfg = {"split": "mine", "patch_size": 16, "patches": 200, "seed": 0}
    recipe = recipes.CoCoNetRecipe()
    recipe._mask_kind = "saliency"
    data = recipe.stage_data(cfg, {"contrastive": True, "mask_pairs": 2})
    levels = np.round((data[:, 0, 0, 0] + 1) * 127.5).astype(int)
    assert sorted(set(levels)) == [40, 120]                  # pairs a and c, as the detector masks rank them
    assert data[levels == 40, 2].mean() < 0.2                # ... with their saliency masks (5 %, 2.5 % rows)
    recipe._mask_kind = "infrared"
    assert sorted(set(np.round((recipe.stage_data(cfg, {"contrastive": True, "mask_pairs": 2})[:, 0, 0, 0] + 1)
                               * 127.5).astype(int))) == [40, 120]
