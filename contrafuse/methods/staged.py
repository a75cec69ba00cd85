"""Tiled inference by levels: whole-image statistics at the cost of one forward pass.

A network with *sites* (:func:`contrafuse.methods.tiles.is_site`: BatchNorm normalising with the
image's own statistics, CoCoNet's channel-attention Gram matrices) cannot produce any output before
those statistics are known over the whole image. Here its forward is traced with :mod:`torch.fx`
(down to standard layers and the sites) and cut into *levels*: a value's level is the number of
sites on the longest path from the input to it (a site's output is one level above its input). The
levels run one after the other, each once over the image, tile by tile:

* a tile reads the values of earlier levels (and the inputs) from whole-image copies, so it needs
  context only for its own level's layers, and each value is computed only as far around the tile's
  core as the layers after it in the level reach (worked out backwards from what the level keeps: a
  3x3 convolution at 1/8 resolution needs its input 8 canvas pixels further out);
* the level's sites accumulate over the tile cores (which partition the image): per-channel moments
  merged by Chan's formula in float64, Gram matrices summed in float64;
* what later levels read is written, core by core, to whole-image files: temporary files in the
  temporary folder (``TMPDIR``), unlinked as soon as they are made, so that they hold disk space
  only until closed (after their last reader, on any error, or when the process ends, killed or
  not) and never count in the process's memory. A BatchNorm site's output is stored as its input
  and normalised with the finished statistics as it is read.

So every layer runs once per pixel, plus a margin of a few pixels around each tile, and the result
equals the whole-image one to float rounding (``tests/test_tiling.py``). Tracing finds the scale of
every value (canvas pixels per value pixel) from a small probe run, and each layer's reach from a
table of the operations it knows; a network with anything else between its sites (a reflection
padding, a size read from a tensor) raises :class:`NotStaged`, and :mod:`contrafuse.methods.tiling`
runs it in its multi-pass way instead.
"""

from __future__ import annotations

import errno
import operator
import os
import shutil
import tempfile

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F

from ..errors import ContrafuseError
from ..nn import crop_to, pad_to_multiple
from .tiles import Moments, auto_core_size, is_site, normalise, plan_tiles, tile_memory_budget

#: operations that map each pixel to itself (every image-shaped input at the output's scale)
POINTWISE_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, torch.add,
                       torch.sub, torch.mul, torch.div, torch.tanh, torch.sigmoid, torch.relu, F.relu, F.leaky_relu,
                       torch.einsum, torch.cat, crop_to}
POINTWISE_METHODS = {"add", "sub", "mul", "div", "neg", "tanh", "sigmoid", "relu", "clamp", "contiguous", "float", "to"}
POINTWISE_MODULES = (nn.BatchNorm2d, nn.LeakyReLU, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity)
#: attributes of an image-shaped value that do not depend on its size
SIZE_FREE_ATTRIBUTES = {"dtype", "device"}
MAX_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
INTERPOLATE_ARGS = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
#: side of the probe canvas, in size multiples (different primes: no value's size is ambiguous)
PROBE_SIDES = (13, 11)
#: tiles are sized so that this many times the estimated live bytes fit the memory budget
#: (convolution workspaces, dtype conversions)
MEMORY_MARGIN = 2.0
#: the largest core side chosen automatically: larger tiles cost more per pixel on a CPU (their
#: activations leave its caches); a 4000x3000 CoCoNet fusion took 1.13x the CPU time of 640x480's
#: per pixel with 512-pixel cores, 1.53x with the largest the memory budget allows (2 cores, 1 thread)
CORE_SIDE = 512
_STORAGE = {torch.bfloat16: np.int16, torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


class NotStaged(Exception):
    """The network has an operation this module cannot cut into tiles (the message names it)."""


class _Tracer(fx.Tracer):
    """Standard layers and the sites stay single calls; parameters stay concrete (so a forward may
    branch on a weight's layout)."""

    def is_leaf_module(self, module, name) -> bool:
        return is_site(module) or super().is_leaf_module(module, name)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        return attr_val


def _argument(node: fx.Node, names: tuple, name: str, default=None):
    index = names.index(name)
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


class _Plane:
    """A whole-image value, ``(rows, columns, channels)``, in an unlinked temporary file (gone when
    closed or when the process ends), read and written row by row with ``pread``/``pwrite``."""

    def __init__(self, folder: str, height: int, width: int, channels: int, dtype):
        self.dtype, self.storage, self.channels, self.width = dtype, _STORAGE[dtype], channels, width
        self.row = width * channels * np.dtype(self.storage).itemsize  # bytes
        self.file = tempfile.TemporaryFile(dir=folder, prefix="contrafuse-tile-")

    def _rows(self, block: np.ndarray, y0: int, x0: int):
        """``block``'s rows with their offsets in the file (one run when it spans whole rows)."""
        if block.shape[1] == self.width:
            return [(block.reshape(-1), y0 * self.row)]
        step = self.channels * np.dtype(self.storage).itemsize
        return [(block[r], (y0 + r) * self.row + x0 * step) for r in range(block.shape[0])]

    def write(self, y0: int, x0: int, value) -> None:
        block = value[0].permute(1, 2, 0).to(self.dtype).cpu().contiguous()
        block = (block.view(torch.int16) if self.dtype == torch.bfloat16 else block).numpy()
        for part, offset in self._rows(block, y0, x0):
            view = memoryview(part).cast("B")
            while view:  # pwrite may write less than asked (at most 2 GB a call)
                done = os.pwrite(self.file.fileno(), view, offset)
                view, offset = view[done:], offset + done

    def read(self, y0: int, y1: int, x0: int, x1: int, device):
        block = np.empty((y1 - y0, x1 - x0, self.channels), self.storage)
        for part, offset in self._rows(block, y0, x0):
            view = memoryview(part).cast("B")
            while view:
                done = os.preadv(self.file.fileno(), [view], offset)
                if not done:
                    raise OSError(errno.EIO, "a temporary file ended early")
                view, offset = view[done:], offset + done
        tensor = torch.from_numpy(block)
        tensor = tensor.view(torch.bfloat16) if self.dtype == torch.bfloat16 else tensor
        return tensor.permute(2, 0, 1)[None].to(device)  # channels-last (1, C, h, w)

    def close(self) -> None:
        self.file.close()


class LevelPlan:
    """The levels of ``model`` (a torch module taking the canvases' tensors) and how to tile them.

    ``probe`` makes the model's input tensors from ``(height, width)`` canvases: the plan runs the
    traced graph once on a small canvas to learn every value's scale, channels and type."""

    def __init__(self, model, multiple: int, probe):
        try:
            graph = _Tracer().trace(model)
        except Exception as exc:  # noqa: BLE001 - any tracing failure means: not staged
            raise NotStaged(f"cannot trace the network ({type(exc).__name__}: {exc})") from None
        self.module = fx.GraphModule(model, graph)
        self.multiple = multiple
        self.nodes = list(graph.nodes)
        self.inputs = [n for n in self.nodes if n.op == "placeholder"]
        self.result = next(n for n in self.nodes if n.op == "output").args[0]
        self.sites = {n: m for n in self.nodes if n.op == "call_module"
                      and is_site(m := self.module.get_submodule(n.target))}
        self._probe(probe)
        self._levels()
        self._storage()
        self._margins()
        self._memory()

    # -- planning ------------------------------------------------------------------------------------
    def _site(self, node: fx.Node):
        """The module of a site's call, else ``None``."""
        return self.sites.get(node)

    def _probe(self, probe) -> None:
        """Scale (canvas pixels per value pixel; ``None``: not image-shaped), channels and type of every value."""
        height, width = (side * self.multiple for side in PROBE_SIDES)
        values: dict = {}

        class Recorder(fx.Interpreter):
            def run_node(inner, node):
                values[node] = result = super().run_node(node)
                return result

        with torch.inference_mode():
            Recorder(self.module).run(*probe(height, width))
        self.scale, self.channels, self.dtype, self.constant = {}, {}, {}, {}
        for node, value in values.items():
            scale = None
            if isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[0] == 1 and value.shape[-1] > 1:
                s, t = height / value.shape[-2], width / value.shape[-1]
                if s == t and s == int(s) and self.multiple % int(s) == 0:
                    scale = int(s)
            self.scale[node] = scale
            if isinstance(value, torch.Tensor):
                self.dtype[node] = value.dtype
                if scale is not None:
                    self.channels[node] = value.shape[1]
            else:
                self.constant[node] = value  # e.g. a dtype read off a tensor
        if self.scale.get(self.result) != 1 or any(self.scale[n] != 1 for n in self.inputs):
            raise NotStaged("the network's inputs and output must be at the canvas's resolution")

    def _spatial(self, node) -> bool:
        return isinstance(node, fx.Node) and self.scale.get(node) is not None

    def _levels(self) -> None:
        self.level: dict = {}
        for node in self.nodes:
            ins = node.all_input_nodes
            self.level[node] = max((self.level[a] + (self._site(a) is not None) for a in ins), default=0)
            if node.op in ("placeholder", "output") or self._site(node) is not None or self._spatial(node):
                continue
            if any(self._spatial(a) for a in ins) and not (
                    node.op == "call_function" and node.target is getattr and node.args[1] in SIZE_FREE_ATTRIBUTES):
                raise NotStaged(f"{node.name} reduces an image-shaped value outside a whole-image site")
        self.count = self.level[self.result] + 1
        self.steps: list[list] = [[] for _ in range(self.count)]  # what each level computes, in order
        for node in self.nodes:
            if node.op not in ("placeholder", "output") and (self._spatial(node) or self._site(node) is not None):
                self.steps[self.level[node]].append(node)

    def _input_margin(self, node, margin: int) -> int:
        """How far beyond the tile's core (canvas pixels) ``node``'s image-shaped inputs must be right
        for its output to be right ``margin`` beyond it."""
        scale = self.scale[node]
        ins = [a for a in node.all_input_nodes if self._spatial(a)]
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            if is_site(module):
                return 0  # its statistic sums over the core
            if isinstance(module, POINTWISE_MODULES):
                return margin
            if isinstance(module, nn.Conv2d):
                kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
                half = [d * (k - 1) // 2 for k, d in zip(kernel, dilation)]
                same = module.padding_mode == "zeros" and list(_pair(module.padding)) == half
                if _pair(module.stride) == (1, 1) and same:
                    return margin + scale * max(half)
        elif node.target is pad_to_multiple:  # the identity on a canvas that is a multiple already
            return _round_up(margin, _argument(node, ("x", "multiple"), "multiple"))
        elif node.op == "call_function" and node.target in POINTWISE_FUNCTIONS or (
                node.op == "call_method" and node.target in POINTWISE_METHODS):
            along = _argument(node, ("tensors", "dim"), "dim", 0) if node.target is torch.cat else 1
            if along in (1, -3) and all(self.scale[a] == scale for a in ins):
                return margin
        elif node.target is F.max_pool2d:
            kernel = _pair(_argument(node, MAX_POOL_ARGS, "kernel_size"))
            stride = _pair(_argument(node, MAX_POOL_ARGS, "stride") or kernel)
            if (kernel == stride and kernel[0] == kernel[1] and scale == self.scale[ins[0]] * kernel[0]
                    and _argument(node, MAX_POOL_ARGS, "padding", 0) in (0, (0, 0))
                    and _argument(node, MAX_POOL_ARGS, "dilation", 1) in (1, (1, 1))):
                return margin  # a multiple of the output's scale: whole pooling windows
        elif node.target is F.interpolate:
            mode = _argument(node, INTERPOLATE_ARGS, "mode", "nearest")
            if (_argument(node, INTERPOLATE_ARGS, "size") is None and mode in ("nearest", "bilinear")
                    and not _argument(node, INTERPOLATE_ARGS, "align_corners") and scale < self.scale[ins[0]]
                    and not _argument(node, INTERPOLATE_ARGS, "antialias", False)):
                return margin + (self.scale[ins[0]] if mode == "bilinear" else 0)  # one source pixel
        raise NotStaged(f"{node.name} ({node.op} {getattr(node.target, '__name__', node.target)}) is not a layer "
                        "this tiler knows the reach of")

    def _margins(self) -> None:
        """Each level's margins, from its last step back: ``need[level][node]``, how far beyond the
        core a value must be right (stored values and sites' inputs: none), ``given[node]``, how far
        a step's inputs are cut around the core, and the level's halo (the widest value it reads)."""
        self.need: list[dict] = []
        self.given: dict = {}
        self.halo = []
        for level, steps in enumerate(self.steps):
            need: dict = {}
            for node in reversed(steps):
                margin = need[node] = _round_up(need.get(node, 0), self.scale.get(node) or 1)
                ins = [a for a in node.all_input_nodes if self._spatial(a)]
                given = self.given[node] = _round_up(self._input_margin(node, margin),
                                                     max((self.scale[a] for a in ins), default=1))
                for a in ins:
                    need[a] = max(need.get(a, 0), given)
            self.need.append(need)
            self.halo.append(_round_up(max((need[n] for n in self.fetched[level]), default=0), self.multiple))

    def _source(self, node):
        """The stored value a later level reads for ``node`` (a BatchNorm site: its input)."""
        site = self._site(node)
        return node.args[0] if isinstance(site, nn.BatchNorm2d) else node

    def _storage(self) -> None:
        """Which values each level reads from earlier ones, which are stored, and each one's last reader."""
        self.stored: dict = {}  # node -> last level reading it
        self.fetched: list[list] = [[] for _ in range(self.count)]
        for level, steps in enumerate(self.steps):
            seen = []
            for node in steps:
                for a in node.all_input_nodes:
                    if self._spatial(a) and (self.level[a] < level or self._site(a) is not None
                                             or a.op == "placeholder") and a not in seen:
                        seen.append(a)
                        source = self._source(a)
                        if source.op != "placeholder":
                            self.stored[source] = level
            self.fetched[level] = seen

    def _memory(self) -> None:
        """When a tile is done with each value (``last[level][node]``: the step using it last) and
        each level's bytes per canvas pixel at its busiest step."""
        self.last = [{n: i for i, step in enumerate(steps) for n in step.all_input_nodes} for steps in self.steps]
        self.bytes_per_pixel = []
        for level, steps in enumerate(self.steps):
            last = self.last[level]
            live = {n: self._bytes(n) for n in self.fetched[level]}
            peak = sum(live.values())
            for i, node in enumerate(steps):
                if self._spatial(node):
                    live[node] = self._bytes(node)
                peak = max(peak, sum(live.values()))
                for n in [n for n in live if last.get(n, -1) <= i]:
                    del live[n]
            self.bytes_per_pixel.append(peak)

    def _bytes(self, node) -> float:
        return self.channels[node] * self.dtype[node].itemsize / self.scale[node] ** 2

    def plane_bytes(self, node, height: int, width: int) -> int:
        return int(height * width * self._bytes(node))

    def peak_storage(self, height: int, width: int) -> int:
        """The most bytes the stored values hold at once."""
        first = {}
        for level, steps in enumerate(self.steps):
            for node in steps:
                first.setdefault(node, level)
        return max(sum(self.plane_bytes(n, height, width) for n, last in self.stored.items()
                       if first[n] <= level <= last) for level in range(self.count))

    # -- running ---------------------------------------------------------------------------------------
    def run(self, canvases: list[np.ndarray], to_tensor, core: int | None, bar) -> np.ndarray:
        """The network's output over ``canvases``, ``(channels, H, W)`` float32; ``core``: tile side
        (``None``: :data:`CORE_SIDE`, or less where a level's tiles would not fit the memory budget)."""
        height, width = canvases[0].shape[:2]
        folder = tempfile.gettempdir()
        need, free = self.peak_storage(height, width), shutil.disk_usage(folder).free
        if need > free:
            raise ContrafuseError(folder, f"tiled inference of a {width}x{height} canvas keeps {need / 1e9:.1f} GB of "
                                  f"intermediate results in temporary files, but only {free / 1e9:.1f} GB are free "
                                  "here; set TMPDIR to a folder with more space")
        budget = tile_memory_budget()
        cores = [core or min(_round_up(CORE_SIDE, self.multiple), auto_core_size(
            MEMORY_MARGIN * self.bytes_per_pixel[k], self.halo[k], self.multiple, budget)) for k in range(self.count)]
        plans = [plan_tiles(height, width, cores[k], self.halo[k], self.multiple) for k in range(self.count)]
        bar.reset(total=sum(map(len, plans)))
        run = _Run(self, canvases, to_tensor, folder)
        try:
            with torch.inference_mode():
                for level, tiles in enumerate(plans):
                    for tile in tiles:
                        run.tile(level, tile)
                        bar.update()
                    run.finish(level)
            return run.out
        except OSError as exc:  # the temporary folder filled up, or failed
            raise ContrafuseError(folder, f"cannot keep tiled inference's intermediate results here "
                                  f"({exc.strerror or exc}); set TMPDIR to another folder") from None
        finally:
            run.close()


class _Run:
    """One image through a :class:`LevelPlan`: its stored values, site statistics and output."""

    def __init__(self, plan: LevelPlan, canvases, to_tensor, folder: str):
        self.plan, self.canvases, self.to_tensor, self.folder = plan, canvases, to_tensor, folder
        self.height, self.width = canvases[0].shape[:2]
        self.planes: dict = {}
        self.moments: dict = {}  # BatchNorm site -> Moments; Gram site -> float64 sum
        self.frozen: dict = {}  # site -> its whole-image statistic
        self.constants: dict = {}
        self.out = None
        self.device = next(plan.module.parameters()).device

    def close(self) -> None:
        for plane in self.planes.values():
            plane.close()
        self.planes = {}

    def constant(self, node):
        """A value that is not image-shaped (a parameter, a statistic, what is made of them)."""
        plan = self.plan
        if node in self.frozen:
            return self.frozen[node]
        if node in plan.constant:
            return plan.constant[node]
        if node not in self.constants:
            if node.op == "get_attr":
                value = plan.module
                for part in node.target.split("."):
                    value = getattr(value, part)
            else:
                args, kwargs = fx.node.map_arg((node.args, node.kwargs), self.constant)
                value = self.call(node, args, kwargs)
            self.constants[node] = value
        return self.constants[node]

    def call(self, node, args, kwargs):
        if node.op == "call_module":
            return self.plan.module.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return node.target(*args, **kwargs)

    def region(self, tile, margin: int) -> tuple:
        """The tile's core grown by ``margin`` (canvas pixels), within the canvas."""
        return (max(0, tile.cy0 - margin), min(self.height, tile.cy1 + margin),
                max(0, tile.cx0 - margin), min(self.width, tile.cx1 + margin))

    def fetch(self, node, tile, margin: int):
        """An earlier level's (or an input's) value ``margin`` around the tile's core."""
        plan = self.plan
        source = plan._source(node)
        s = plan.scale[source]
        y0, y1, x0, x1 = (v // s for v in self.region(tile, margin))
        if source.op == "placeholder":
            value = self.to_tensor(self.canvases[plan.inputs.index(source)][y0:y1, x0:x1])
        else:
            value = self.planes[source].read(y0, y1, x0, x1, self.device)
        if source is not node:  # a BatchNorm site, read as its input
            value = normalise(plan.module.get_submodule(node.target), value, *self.frozen[node]).to(plan.dtype[node])
        return value

    def cut(self, value, scale: int, tile, have: int, want: int):
        """``value``, right ``have`` around the tile's core, cut to ``want`` around it."""
        if have == want:
            return value
        (y0, _, x0, _), (v0, v1, u0, u1) = self.region(tile, have), self.region(tile, want)
        return value[..., (v0 - y0) // scale:(v1 - y0) // scale, (u0 - x0) // scale:(u1 - x0) // scale]

    def tile(self, level: int, tile) -> None:
        """Level ``level``'s steps over ``tile``: its sites accumulate, its stored values and the
        output are written over the core."""
        plan = self.plan
        need = plan.need[level]
        env = {n: self.fetch(n, tile, need[n]) for n in plan.fetched[level]}  # value, right need[n] around
        last = plan.last[level]
        for i, node in enumerate(plan.steps[level]):
            given = plan.given[node]

            def argument(a):
                if a in env:
                    return self.cut(env[a], plan.scale[a], tile, need[a], given)
                return self.constant(a)

            args, kwargs = fx.node.map_arg((node.args, node.kwargs), argument)
            site = plan._site(node)
            if site is not None:
                self.accumulate(node, site, args, kwargs)
            else:
                s = plan.scale[node]
                value = self.call(node, args, kwargs)
                y0, y1, x0, x1 = self.region(tile, given)
                if value.shape[-2:] != ((y1 - y0) // s, (x1 - x0) // s):
                    raise RuntimeError(f"{node.name} changed a tile's size to {tuple(value.shape)}")
                value = env[node] = self.cut(value, s, tile, given, need[node])
                if node in plan.stored:
                    if node not in self.planes:
                        self.planes[node] = _Plane(self.folder, self.height // s, self.width // s,
                                                   plan.channels[node], plan.dtype[node])
                    self.planes[node].write(tile.cy0 // s, tile.cx0 // s, self.cut(value, s, tile, need[node], 0))
                if node is plan.result:
                    self.place(self.cut(value, s, tile, need[node], 0), tile)
            for n in [n for n in env if last.get(n, i) <= i]:  # used up in this tile
                del env[n]

    def accumulate(self, node, site, args, kwargs) -> None:
        if isinstance(site, nn.BatchNorm2d):
            self.moments.setdefault(node, Moments()).add(args[0])
        else:  # a sum over pixels: the module's value on the core is the tile's share
            share = self.call(node, args, kwargs).double()
            self.moments[node] = self.moments[node] + share if node in self.moments else share

    def finish(self, level: int) -> None:
        """Freeze the level's site statistics; close the stored values no later level reads."""
        for node in self.plan.steps[level]:
            if node in self.moments:
                total = self.moments.pop(node)
                self.frozen[node] = total.mean_var() if isinstance(total, Moments) else total.to(self.plan.dtype[node])
        for node, last in self.plan.stored.items():
            if last == level and node in self.planes:
                self.planes.pop(node).close()

    def place(self, core, tile) -> None:
        core = core[0].float().cpu().numpy()
        if self.out is None:
            self.out = np.empty((core.shape[0], self.height, self.width), np.float32)
        self.out[:, tile.cy0:tile.cy1, tile.cx0:tile.cx1] = core
