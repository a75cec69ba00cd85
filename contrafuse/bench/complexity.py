"""Complexity table (CoCoNet Table 4, CLF-Net Table VII): parameters, FLOPs at a stated input size
counted with PyTorch's own ``FlopCounterMode``, and median runtime at 640x480 on this machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..methods import create_method
from .timing import median_seconds, write_result


def count_flops(model, size, channels: int = 1) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, channels, *size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, x)
    return int(counter.get_total_flops())


def complexity_table(specs, cfg: dict, out_json: Path, quick: bool = False) -> str:
    flops_size = tuple(cfg.get("flops_size", [64, 64]))
    runtime_size = tuple(cfg.get("runtime_size", [480, 640]))
    rng = np.random.default_rng(0)
    a, b = (rng.random(runtime_size).astype(np.float32) for _ in range(2))
    rows = {}
    for spec in specs:
        if spec.external is not None:
            continue
        method = create_method(spec.name, **spec.options)
        row = {"parameters": 0, "trainable_parameters": 0, "flops": None}
        if getattr(method, "spec", None) is not None:
            from ..nn import fusion_parameters
            model = method.build().eval()  # as declared: before inference-only folding
            fusion_params = fusion_parameters(model)
            row["parameters"] = int(sum(p.numel() for p in fusion_params))
            row["trainable_parameters"] = int(sum(p.numel() for p in fusion_params if p.requires_grad))
            row["flops"] = count_flops(model, flops_size, method.protocol.channels)
        row["runtime_seconds"] = median_seconds(lambda m=method: m.fuse_grey(a, b), repeats=1 if quick else 3)
        rows[spec.label] = row
    write_result(out_json, {"flops_size": flops_size, "runtime_size": runtime_size, "methods": rows})
    lines = ["### Complexity", "",
             (f"FLOPs counted by `torch.utils.flop_counter` at {flops_size[0]}x{flops_size[1]} (a multiply-add "
              f"counts as 2 FLOPs); runtime: median seconds to fuse one {runtime_size[1]}x{runtime_size[0]} "
              "grey pair on the machine above. Parameters exclude training-only heads; CoCoNet's include the "
              "frozen VGG-19 layers up to conv3_4 (trainable ones in brackets)."), "",
             "| method | parameters (M) | GFLOPs | runtime (s) |", "|---|---|---|---|"]
    for label, row in rows.items():
        params = (f"{row['parameters'] / 1e6:.4f} ({row['trainable_parameters'] / 1e6:.4f})"
                  if row["parameters"] else "–")
        flops = f"{row['flops'] / 1e9:.3f}" if row["flops"] is not None else "–"
        lines.append(f"| {label} | {params} | {flops} | {row['runtime_seconds']:.3f} |")
    return "\n".join(lines) + "\n"
