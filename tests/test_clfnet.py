"""CLF-Net: parameter count, PatchNCE by hand, windowed SSIM source selection, sizes, seeding."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from contrafuse.losses.clfnet import CLFNetLoss, adaptive_patch_nce, windowed_ssim_loss
from contrafuse.nn import fusion_parameters
from contrafuse.nn.clfnet import CLFNet


def test_parameter_count_matches_table_vii():
    model = CLFNet()
    assert sum(p.numel() for p in fusion_parameters(model)) == 190_120
    # The authors' code also allocates a 16x16 1x1 identity convolution in the second block of each
    # encoder that its forward pass never uses; counting those 2 x 256 parameters gives Table VII.
    assert round((sum(p.numel() for p in fusion_parameters(model)) + 2 * 16 * 16) / 1e6, 4) == 0.1906


@pytest.mark.parametrize("padding", ["code", "paper"])
@pytest.mark.parametrize("size", [(17, 31), (33, 8), (1, 5)])
def test_output_size_equals_input_size(padding, size):
    model = CLFNet(padding=padding).eval()
    x = torch.rand(2, 1, *size) * 2 - 1
    with torch.no_grad():
        assert model(x, x).shape == x.shape


@pytest.mark.parametrize("padding", ["code", "paper"])
def test_border_radius_bounds_the_reach_of_the_zero_padding(padding):
    torch.manual_seed(0)
    model = CLFNet(padding=padding).eval()
    r = model.border_radius()
    x, y = torch.rand(1, 1, 40, 44) * 2 - 1, torch.rand(1, 1, 40, 44) * 2 - 1
    padded = [F.pad(t, (r, r, r, r), mode="reflect") for t in (x, y)]
    with torch.no_grad():
        bare, cropped = model(x, y), model(*padded)[..., r:-r, r:-r]
    assert r == 8  # eight 3x3 convolutions padded by 1 ("code"), eight 1x1 padded by 1 ("paper")
    difference = (bare - cropped).abs()[0, 0]
    assert difference[r:-r, r:-r].max() <= 1e-7  # beyond the radius the padding changes nothing
    assert difference[0].max() > 1e-5  # at the border it does


def test_patch_nce_by_hand():
    torch.manual_seed(0)
    b, s, k, tau = 2, 3, 4, 0.07
    q_ir, q_vis, k_ir, k_vis = (torch.randn(b, s, k) for _ in range(4))
    loss, use_ir = adaptive_patch_nce(q_ir, q_vis, k_ir, k_vis, tau)
    norm = [F.normalize(t.reshape(b * s, k), dim=1) for t in (q_ir, q_vis, k_ir, k_vis)]
    qi, qv, ki, kv = norm
    expected, choices = 0.0, []
    for n in range(b * s):
        ir_wins = float(qi[n] @ ki[n]) > float(qv[n] @ kv[n])        # Eq. 7
        q, keys = (qi[n], ki) if ir_wins else (qv[n], kv)
        logits = [float(q @ keys[m]) / tau for m in range(b * s)]  # positive + S-1 + (B-1)S negatives
        assert len(logits) - 1 == (s - 1) + (b - 1) * s
        expected += -logits[n] + np.log(np.sum(np.exp(logits)))
        choices.append(ir_wins)
    assert loss.item() == pytest.approx(expected / (b * s), rel=1e-5)
    assert use_ir.flatten().tolist() == choices


def _ssim_window(x, y, c1=1e-4, c2=9e-4):
    mx, my = x.mean(), y.mean()
    vx, vy = ((x - mx) ** 2).mean(), ((y - my) ** 2).mean()
    cov = ((x - mx) * (y - my)).mean()
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_windowed_ssim_picks_the_brighter_source_per_window():
    torch.manual_seed(0)
    h, w, win = 20, 19, 16
    ir = torch.rand(1, 1, h, w) * 0.5
    vis = torch.rand(1, 1, h, w) * 0.5
    ir[..., :, :8] += 0.5      # IR is brighter on the left, VIS on the right
    vis[..., :, 8:] += 0.5
    fused = torch.rand(1, 1, h, w)
    got = windowed_ssim_loss(fused, ir, vis, window=win)
    scores = []
    for y in range(h - win + 1):
        for x in range(w - win + 1):
            sl = (0, 0, slice(y, y + win), slice(x, x + win))
            src = ir if ir[sl].mean() > vis[sl].mean() else vis
            scores.append(_ssim_window(fused[sl].double(), src[sl].double()))
    assert got.item() == pytest.approx(1 - float(np.mean(scores)), rel=1e-4)
    # fused equal to the brighter source everywhere scores perfectly; equal to the darker, not
    assert windowed_ssim_loss(ir, ir, ir * 0.5).item() == pytest.approx(0.0, abs=1e-6)
    assert windowed_ssim_loss(ir * 0.5, ir, ir * 0.5).item() > 0.01


def test_windowed_ssim_gaussian_kind_matches_a_zero_padded_conv2d_reference():
    """The authors' form: 16x16 Gaussian (sigma 1.5), zero padding 8; the choice of source per
    window by the Gaussian-weighted mean, computed here with plain conv2d in float64."""
    torch.manual_seed(1)
    ir, vis, fused = (torch.rand(2, 1, 23, 21, dtype=torch.float64) * 2 - 1 for _ in range(3))
    coords = torch.arange(16, dtype=torch.float64) - 7.5
    g = torch.exp(-coords**2 / (2 * 1.5**2))
    window = (torch.outer(g, g) / g.sum() ** 2)[None, None]

    def mean(x):
        return torch.nn.functional.conv2d(x, window, padding=8)

    def local_ssim(x, y):
        mx, my = mean(x), mean(y)
        vx, vy, cov = mean(x * x) - mx**2, mean(y * y) - my**2, mean(x * y) - mx * my
        return ((2 * mx * my + 1e-4) * (2 * cov + 9e-4)) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4))

    expected = 1 - torch.where(mean(ir) > mean(vis), local_ssim(fused, ir), local_ssim(fused, vis)).mean()
    got = windowed_ssim_loss(fused.float(), ir.float(), vis.float(), kind="gaussian")
    assert got.item() == pytest.approx(expected.item(), abs=1e-5)


def test_fixed_seed_reproduces_a_training_step():
    def one_step():
        torch.manual_seed(7)
        model = CLFNet()
        loss_fn = CLFNetLoss(model, samples=50)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        ir, vis = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
        losses = loss_fn(model(ir, vis), ir, vis)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        return losses["total"].item(), model.decoder[-1].conv2.weight.detach().clone()
    (l1, w1), (l2, w2) = one_step(), one_step()
    assert l1 == l2 and torch.equal(w1, w2)


def test_loss_trains_encoders_and_head():
    torch.manual_seed(0)
    model = CLFNet()
    ir, vis = torch.rand(2, 1, 24, 24) * 2 - 1, torch.rand(2, 1, 24, 24) * 2 - 1
    CLFNetLoss(model, samples=30)(model(ir, vis), ir, vis)["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def test_folded_batchnorm_gives_the_same_fusion():
    torch.manual_seed(0)
    model = CLFNet()
    with torch.no_grad():  # non-trivial running statistics
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model.eval()
    x, y = torch.rand(1, 1, 21, 30) * 2 - 1, torch.rand(1, 1, 21, 30) * 2 - 1
    with torch.no_grad():
        expected = model(x, y)
        folded = model.fold_batchnorm()(x, y)
    assert torch.allclose(expected, folded, atol=1e-5)
