"""A network wrapped in the steps of its inference protocol that belong inside the graph.

:class:`ProtocolNetwork` takes the two sources as [0, 1] tensors ``(N, C, H, W)`` and returns the
result on [0, 1] (not yet clipped): it maps the inputs onto the network's range and normalises
them, feeds them in the network's order, and maps the output back. The same module runs in the
PyTorch runner, in tiles, under ``torch.compile``, and is what an ONNX export holds, so every
backend executes one definition of the protocol (:class:`contrafuse.models.Protocol`).
"""

from __future__ import annotations

import torch
from torch import nn


class ProtocolNetwork(nn.Module):
    def __init__(self, network: nn.Module, protocol):
        super().__init__()
        self.network = network
        low, high = protocol.input_range
        channels = protocol.channels
        mean = torch.tensor(protocol.mean or [0.0] * channels).view(1, -1, 1, 1)
        std = torch.tensor(protocol.std or [1.0] * channels).view(1, -1, 1, 1)
        # x * (high - low) + low, then (x - mean) / std, as one affine map per channel
        self.register_buffer("in_scale", (high - low) / std, persistent=False)
        self.register_buffer("in_shift", (low - mean) / std, persistent=False)
        self.out_low, out_high = protocol.output_range
        self.out_span = out_high - self.out_low
        self.swap = tuple(protocol.order) == ("second", "first")

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        first, second = (x * self.in_scale + self.in_shift for x in (first, second))
        if self.swap:
            first, second = second, first
        return (self.network(first, second) - self.out_low) / self.out_span
