"""ONNX export of the learned networks and inference with ONNX Runtime (optional extra
``pip install contrafuse[onnx]``).

:func:`export_onnx` writes a network with its weights and the graph-side steps of its inference
protocol baked in (:class:`contrafuse.nn.protocol.ProtocolNetwork`: input range, normalisation,
source order, output range; per-image BatchNorm exports as such): the graph takes the two sources as
[0, 1] ``(1, C, H, W)`` arrays and returns the result on [0, 1]. The file's metadata holds the whole
protocol (:class:`contrafuse.models.Protocol`) and what the caller must do around the graph: the
reflected border, the size multiple, clipping, the per-image stretch and the 8-bit rounding.
:class:`OnnxNetwork` runs such a file on NumPy arrays without importing PyTorch. ``backend=
"onnxruntime"`` on a learned method exports once into the cache (``$CONTRAFUSE_HOME/onnx``, keyed
by the weights, the protocol and the network's source code) and reuses the file afterwards.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError

#: Metadata keys written into every exported file.
META_KEY = "contrafuse"


def export_onnx(method, path: str | os.PathLike) -> Path:
    """Export ``method`` (a torch-backed learned method) to ``path`` atomically."""
    import copy

    import onnx
    import torch

    from ..io import atomic_replace

    path = Path(path)
    model = copy.deepcopy(method.model).float().to(memory_format=torch.contiguous_format).cpu()
    m = max(method.multiple, 8)
    generator = torch.Generator().manual_seed(0)
    # two different example tensors: the exporter merges graph inputs fed the same tensor
    channels = method.protocol.channels
    examples = tuple(torch.rand(1, channels, 8 * m, 12 * m, generator=generator) for _ in range(2))
    height, width = torch.export.Dim("height"), torch.export.Dim("width")
    shapes = ({2: height, 3: width}, {2: height, 3: width})  # both inputs share one size
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        import logging
        import warnings
        exporter_log = logging.getLogger("torch.onnx")  # its notes (e.g. "torchvision is not installed") are not ours
        level = exporter_log.level
        exporter_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, examples, tmp, input_names=["first", "second"], output_names=["fused"],
                                  dynamic_shapes=shapes, dynamo=True, verbose=False,  # no progress lines
                                  external_data=False)
        finally:
            exporter_log.setLevel(level)
        graph = onnx.load(tmp)
        entry = graph.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(recipe_of(method))
        onnx.save(graph, tmp)
        atomic_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def recipe_of(method) -> dict:
    """What a runner needs besides the graph: the protocol, and the border and halo resolved to pixels."""
    return {"method": method.name, "inference": method.inference, "protocol": method.protocol.as_dict(),
            "border": method.border, "multiple": method.multiple, "halo": method.halo,
            "whole_image_statistics": method.needs_whole_image_statistics}


def cache_path(method_name: str, inference: str | None, weights: Path, sources: list[Path]) -> Path:
    """Where the exported file for these weights, protocol and network code is cached."""
    from ..fingerprint import fingerprint
    from ..weights import home

    key = fingerprint([method_name, str(inference), Path(weights), *map(Path, sources)])
    return home() / "onnx" / f"{method_name}-{inference or 'default'}-{key}.onnx"


def ort_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path``, or a one-line error."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ContrafuseError(None, "ONNX models need ONNX Runtime: pip install onnxruntime") from None
    if not Path(path).is_file():
        raise ContrafuseError(path, "file not found")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ContrafuseError(path, f"cannot load ONNX model ({str(exc).splitlines()[0]})") from None


class OnnxNetwork:
    """An exported network run by ONNX Runtime on ``(1, C, H, W)`` float32 arrays in [0, 1]."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.session = ort_session(path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in meta:
            raise ContrafuseError(path, "not a contrafuse export (no contrafuse metadata)")
        self.recipe = json.loads(meta[META_KEY])

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"first": first, "second": second})[0]
