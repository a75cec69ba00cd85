"""Training machinery shared by the learned methods: bfloat16 autocast against float32, the
convergence rule, CoCoNet's anchor split, CLF-Net's reuse of the fusion pass's features."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyRecipe

from contrafuse.losses.clfnet import CLFNetLoss
from contrafuse.losses.coconet import CoupledContrastiveLoss
from contrafuse.nn.clfnet import CLFNet
from contrafuse.nn.coconet import CoCoNet
from contrafuse.nn.vgg import VGG19
from contrafuse.precision import autocast, resolve_precision
from contrafuse.train.loop import converged
from contrafuse.train.recipes import RECIPES


@pytest.fixture(scope="module")
def vgg_state():
    from contrafuse.weights import vgg19_state
    return vgg19_state()


def _loss_and_gradient(model, step, precision):
    model.zero_grad()
    with autocast("cpu", precision):
        loss = step()
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.item(), grad


def _compare(model, step):
    loss32, grad32 = _loss_and_gradient(model, step, "fp32")
    loss16, grad16 = _loss_and_gradient(model, step, "bf16")
    cosine = torch.nn.functional.cosine_similarity(grad32, grad16, dim=0).item()
    return loss32, loss16, cosine


def test_bf16_coconet_step_follows_fp32(vgg_state):
    """The convolutions run in bfloat16, the losses in float32: the loss agrees to 1 % and the
    gradient points the same way (a bfloat16 SSIM alone moved the first loss by 50 %)."""
    from contrafuse.losses.coconet import SelfAdaptiveLoss

    torch.manual_seed(0)
    model = CoCoNet(vgg_state=vgg_state).train()
    contrast = CoupledContrastiveLoss(VGG19(state=vgg_state))
    ir, vis = torch.rand(6, 1, 32, 32) * 2 - 1, torch.rand(6, 1, 32, 32) * 2 - 1
    mask = (torch.rand(6, 1, 32, 32) > 0.7).float()

    def step():
        fused = model(ir, vis)
        return SelfAdaptiveLoss()(fused, ir, vis)["self_adaptive"] + contrast(fused, ir, vis, mask)["contrastive"]

    loss32, loss16, cosine = _compare(model, step)
    assert loss16 == pytest.approx(loss32, rel=0.01) and cosine > 0.98


def test_bf16_clfnet_gradient_is_within_patchnce_sampling_noise():
    """On the shipped weights and real patches. PatchNCE's similarities, divided by 0.07, are
    sensitive to bfloat16's rounding of the encoder features, so the bf16 gradient is not the fp32
    one; but it is closer to it than the fp32 gradient for another draw of the 200 sampled
    locations is, i.e. within the noise the loss has by design. SSIM agrees to 1 %."""
    from conftest import dataset
    from PIL import Image

    from contrafuse.weights import PACKAGE_WEIGHTS, load_trained_weights

    tno = dataset("TNO_CoCoNet")
    images = [np.asarray(Image.open(tno / part / "TNO_005.png").convert("L"), np.float32) / 127.5 - 1
              for part in ("ir", "vis")]
    model = CLFNet()
    load_trained_weights(model, PACKAGE_WEIGHTS / "clfnet_tno.safetensors")
    loss_fn = CLFNetLoss(model.train())
    cosine = torch.nn.functional.cosine_similarity
    precision_gap, sampling_gap = [], []
    for top, left in [(100, 200), (0, 0), (200, 100)]:
        ir, vis = (torch.from_numpy(a[top:top + 128, left:left + 128])[None, None].repeat(2, 1, 1, 1) for a in images)
        ir[1], vis[1] = ir[1].flip(-1), vis[1].flip(-1)
        results = {}
        for precision, seed in [("fp32", 1), ("fp32", 2), ("bf16", 1)]:
            def step(seed=seed, ir=ir, vis=vis):
                torch.manual_seed(seed)  # which 200 locations are sampled
                return loss_fn(model(ir, vis), ir, vis)
            model.zero_grad()
            with autocast("cpu", precision):
                losses = step()
            losses["total"].backward()
            grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            results[precision, seed] = (losses["ssim"].item(), grad)
        assert results["bf16", 1][0] == pytest.approx(results["fp32", 1][0], rel=0.01)
        precision_gap.append(cosine(results["fp32", 1][1], results["bf16", 1][1], dim=0).item())
        sampling_gap.append(cosine(results["fp32", 1][1], results["fp32", 2][1], dim=0).item())
    assert np.mean(precision_gap) > np.mean(sampling_gap)


def test_precision_names():
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    from contrafuse.errors import ContrafuseError
    with pytest.raises(ContrafuseError, match="precision"):
        resolve_precision("fp8", "cpu")


def test_convergence_rule_by_hand():
    rule = {"tolerance": 0.01, "patience": 2}
    assert not converged([5.0, 4.0, 3.0], rule)              # still falling by 20-25 % an epoch
    assert not converged([5.0, 4.99], rule)                  # too few epochs to judge
    assert converged([5.0, 4.0, 3.99, 3.985], rule)          # two epochs under 1 %
    assert not converged([5.0, 4.0, 3.99, 3.5], rule)        # the last epoch fell 12 %
    assert converged([4.0, 4.1, 4.2], rule)                  # rising counts as no progress
    assert not converged([4.0, 4.1, 4.2], None)              # no rule: run every epoch


def test_optimizer_from_config():
    """Adam with the config's rate unless ``optimizer`` names another torch.optim class and its options."""
    from contrafuse.train.loop import build_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].requires_grad_(False)  # frozen layers (CoCoNet's VGG-19) are not optimised
    adam = build_optimizer({"lr": 0.01}, model)
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["lr"] == 0.01
    assert len(adam.param_groups[0]["params"]) == 2
    sgd = build_optimizer({"lr": 0.1, "optimizer": {"type": "SGD", "momentum": 0.9}}, model)
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["momentum"] == 0.9


def test_clfnet_reuses_the_fusion_pass_features_exactly():
    """The recipe feeds the fusion pass's source features to the PatchNCE loss instead of
    encoding the sources again: same loss, same gradients."""
    torch.manual_seed(0)
    model = CLFNet().train()
    ir, vis = torch.rand(2, 1, 40, 40) * 2 - 1, torch.rand(2, 1, 40, 40) * 2 - 1
    loss_fn = CLFNetLoss(model, samples=50)

    def run(reuse):
        model.zero_grad()
        torch.manual_seed(3)
        features = model.encode(ir, vis)
        fused = model.decode(*features)
        loss = loss_fn(fused, ir, vis, source_features=features if reuse else None)["total"]
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    (a, grads_a), (b, grads_b) = run(False), run(True)
    assert a == pytest.approx(b, rel=1e-6)
    grads_a, grads_b = torch.cat([g.flatten() for g in grads_a]), torch.cat([g.flatten() for g in grads_b])
    assert ((grads_a - grads_b).norm() / grads_a.norm()).item() < 1e-5  # float summation order only


def test_coconet_anchor_split_uses_the_other_patches_as_negatives(vgg_state):
    """``anchors: 10`` (the authors' code): only the first group is fused; the extra negatives are
    the other groups' sources cut by the anchor's mask, which this hand-built call reproduces."""
    recipe = RECIPES.get("coconet")()
    cfg = {"stages": [{"contrastive": True}], "masks": "infrared"}
    model = recipe.build_model(cfg)
    calls = []
    original = model.forward
    model.forward = lambda ir, vis: calls.append(ir.shape[0]) or original(ir, vis)
    torch.manual_seed(0)
    batch = torch.rand(6, 3, 24, 24) * 2 - 1
    batch[:, 2] = (batch[:, 2] > 0.3).float()
    losses = recipe.step(model, batch, {"contrastive": True, "anchors": 2})
    assert calls == [2]

    torch.manual_seed(0)
    model.forward = original
    ir, vis, mask = batch[:2, 0:1], batch[:2, 1:2], batch[:2, 2:3]
    loss = CoupledContrastiveLoss(VGG19(state=vgg_state))
    fused = model(ir, vis)
    inverse = 1 - mask
    target = loss._term(fused * mask, ir * mask, [vis * mask, batch[2:4, 1:2] * mask, batch[4:6, 1:2] * mask])
    detail = loss._term(fused * inverse, vis * inverse, [ir * inverse, batch[2:4, 0:1] * inverse,
                                                         batch[4:6, 0:1] * inverse])
    assert losses["target"].item() == pytest.approx(target.item(), rel=1e-5)
    assert losses["detail"].item() == pytest.approx(detail.item(), rel=1e-5)


def test_training_runs_under_autocast_and_records_precision(tmp_path):

    from contrafuse.train.loop import train

    class Bf16Recipe(TinyRecipe):
        def step(self, model, batch, stage):
            assert model(batch).dtype == torch.bfloat16  # the convolution runs under autocast
            return super().step(model, batch, stage)

    cfg = {"method": "tiny", "lr": 0.01, "batch_size": 2, "seed": 0, "precision": "bf16",
           "stages": [{"name": "s", "epochs": 5, "converge": {"tolerance": 1.0, "patience": 1}}]}
    out = train(cfg, Bf16Recipe(), out_dir=tmp_path / "run")
    import yaml
    assert yaml.safe_load((out / "config.yaml").read_text())["precision"] == "bf16"
    # a tolerance of 100 % stops the stage after its second epoch of five; every epoch is exported
    assert (out / "s_epoch1.safetensors").exists() and (out / "s_epoch2.safetensors").exists()
    assert not (out / "s_epoch3.safetensors").exists() and (out / "model.safetensors").exists()


def test_a_run_with_its_own_thread_count_gives_the_callers_back(tmp_path):
    from contrafuse.train.loop import train

    before = torch.get_num_threads()
    seen = []

    class ThreadsRecipe(TinyRecipe):
        def step(self, model, batch, stage):
            seen.append(torch.get_num_threads())
            return super().step(model, batch, stage)

    threads = 1 if before > 1 else 2
    cfg = {"method": "tiny", "lr": 0.01, "batch_size": 2, "seed": 0, "precision": "fp32", "threads": threads,
           "stages": [{"name": "s", "epochs": 1}]}
    train(cfg, ThreadsRecipe(), out_dir=tmp_path / "run")
    assert set(seen) == {threads} and torch.get_num_threads() == before


def test_finished_run_resumes_with_more_epochs_in_its_last_stage(tmp_path):
    """Algorithm 1's "while not converge": a finished run resumed with a longer last stage goes on
    from its last epoch with its optimiser state, and ends where one run of the longer schedule
    ends; a stage that stopped by converging is not reopened."""
    from safetensors.torch import load_file

    from contrafuse.train.loop import train

    def cfg(epochs, converge=None):
        stage = {"name": "s", "epochs": epochs, **({"converge": converge} if converge else {})}
        return {"method": "tiny", "lr": 0.01, "batch_size": 2, "seed": 0, "precision": "fp32",
                "stages": [{"name": "a", "epochs": 1}, stage]}

    whole = train(cfg(3), TinyRecipe(), out_dir=tmp_path / "whole")
    continued = train(cfg(2), TinyRecipe(), out_dir=tmp_path / "continued")
    assert not (continued / "s_epoch3.safetensors").exists()
    train(cfg(3), TinyRecipe(), out_dir=continued, resume=True)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(continued / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    stopped = train(cfg(5, {"tolerance": 1.0, "patience": 1}), TinyRecipe(), out_dir=tmp_path / "stopped")
    assert (stopped / "s_epoch2.safetensors").exists() and not (stopped / "s_epoch3.safetensors").exists()
    train(cfg(6, {"tolerance": 1.0, "patience": 1}), TinyRecipe(), out_dir=stopped, resume=True)
    assert not (stopped / "s_epoch3.safetensors").exists()


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("change, fragment", [
    ({"batch_size": -1}, "batch_size must be at least 1"),
    ({"lr": "fast"}, "lr must be int or float"),
    ({"batch_sise": 4}, "unknown key 'batch_sise'"),
    ({"stages": [{"name": "train"}]}, "missing required key stages[0].'epochs'"),
    ({"stages": [{"epochs": 2, "converge": {"patience": 0}}]}, "stages[0].converge.patience must be at least 1"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"method": "unet"}, "method must be one of"),
    ({"optimizer": {"type": "Adagrad"}}, "optimizer.type must be one of"),
    ({"optimizer": {"momentun": 0.9}}, "unknown key"),
])
def test_config_errors_name_the_key_and_file(tmp_path, change, fragment):
    import yaml

    from contrafuse.errors import ContrafuseError
    from contrafuse.train.config import load_config

    shipped = yaml.safe_load((CONFIGS / "clfnet_tno.yaml").read_text())
    cfg = {**shipped, **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ContrafuseError) as error:
        load_config(path)
    assert fragment in str(error.value) and "bad.yaml" in str(error.value)
    lost = {k: v for k, v in shipped.items() if k != "lr"}
    path.write_text(yaml.safe_dump(lost))
    with pytest.raises(ContrafuseError, match="missing required key 'lr'"):
        load_config(path)
    path.write_text("datasets: [tno\n")
    with pytest.raises(ContrafuseError, match="not valid YAML"):
        load_config(path)


def test_every_shipped_config_loads_from_any_directory(tmp_path, monkeypatch):
    """Input paths resolve relative to the config file; ``package:`` names a shipped file."""
    from contrafuse.train.config import load_config
    from contrafuse.train.sweep import collect

    monkeypatch.chdir(tmp_path)
    configs = sorted(CONFIGS.glob("*.yaml")) + sorted(CONFIGS.glob("ablations/*.yaml"))
    assert len(configs) >= 8
    points = collect(sorted(CONFIGS.glob("sweeps/**/*.yaml")))  # tests/test_sweep.py checks the sweeps further
    for path, cfg in [(path, load_config(path)) for path in configs] + [(p.name, p.config) for p in points]:
        assert os.path.isfile(cfg["split"]), path
        if cfg.get("init_weights", "").endswith("clfnet_tno.safetensors"):
            assert os.path.isfile(cfg["init_weights"]), path
