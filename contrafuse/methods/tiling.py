"""Tiled inference in bounded memory that reproduces the whole-image result.

A fully convolutional network can run tile by tile: each tile is cut with a *halo* at least as wide
as the network's reach, and only its *core* (the tiles' cores partition the image) is kept. Two
kinds of layer look at the whole image, and are handled exactly:

* BatchNorm normalising with the batch's own statistics (CoCoNet's ``authors`` protocol), and
* CoCoNet's channel attention, whose ``C x C`` affinity sums over every pixel (:class:`~contrafuse.nn.coconet.SpatialGram`).

Each such *site* (a module, and which of its calls within one forward) holds a statistic of the
whole image: a per-channel mean and variance, or a Gram matrix. The statistic of a site depends on
the statistics of the sites before it, so it is gathered in passes: a probe on a small input finds
which sites each one depends on; each pass runs every tile with the known statistics frozen and
accumulates, over the tile cores only, the sites whose dependencies are all known (stopping the
forward as soon as they are done); a last pass, with everything frozen, produces the output.
Sums are accumulated in float64, so the tiled result matches the untiled one to float rounding
(tested in ``tests/test_tiling.py``).

Those passes repeat the network, with its whole reach as halo, once per level of statistics (15 for
CoCoNet's ``authors`` protocol). A network that :mod:`torch.fx` can trace into known layers runs
instead level by level (:mod:`contrafuse.methods.staged`): each layer once, its values kept in
temporary files between the levels, at about the cost of one whole-image forward; the passes here
remain for networks it cannot cut.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .staged import LevelPlan, NotStaged
from .tiles import Moments, Tile, is_site, normalise, plan_tiles


class _PassDone(Exception):
    """Raised inside a forward once every site collected in this pass has its tile's share."""


class WholeImageStatistics:
    """Hooks on a model's whole-image sites; see the module docstring."""

    def __init__(self, model):
        self.sites = {name: m for name, m in model.named_modules() if is_site(m)}
        self.frozen: dict[tuple[str, int], object] = {}
        self.collecting: set[tuple[str, int]] = set()
        self.sums: dict[tuple[str, int], list] = {}
        self.calls: Counter = Counter()
        self.done: set[tuple[str, int]] = set()
        self.core: tuple[int, int, int, int] | None = None  # core within the tile, tile pixels
        self.tile_height = 0
        self.markers: dict | None = None  # dependency probe
        self.depends: dict[tuple[str, int], set] = {}
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.sites.items()]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    # -- hooks -----------------------------------------------------------------------------------
    def _hook(self, name: str):
        def hook(module, inputs, output):
            key = (name, self.calls[name])
            self.calls[name] += 1
            if self.markers is not None:
                return self._probe(key, inputs, output)
            if key in self.frozen:
                return self._apply(module, key, inputs, output)
            if key in self.collecting:
                self._collect(module, key, inputs)
                self.done.add(key)
                if self.done >= self.collecting:
                    raise _PassDone
            return None
        return hook

    def _core_of(self, x):
        factor = self.tile_height // x.shape[-2]
        y0, y1, x0, x1 = (v // factor for v in self.core)
        return x[..., y0:y1, x0:x1]

    def _collect(self, module, key, inputs) -> None:
        import torch
        if isinstance(module, torch.nn.BatchNorm2d):
            self.sums.setdefault(key, Moments()).add(self._core_of(inputs[0]))
        else:  # a sum over pixels: the module's value on the core is the tile's share
            share = module.forward(*(self._core_of(t) for t in inputs)).double()  # not re-entering this hook
            self.sums[key] = self.sums[key] + share if key in self.sums else share

    def finish_pass(self) -> None:
        for key in self.collecting:
            total = self.sums.pop(key)
            self.frozen[key] = total.mean_var() if isinstance(total, Moments) else total
        self.collecting = set()

    def _apply(self, module, key, inputs, output):
        import torch
        if isinstance(module, torch.nn.BatchNorm2d):
            return normalise(module, inputs[0], *self.frozen[key]).to(output.dtype)
        return self.frozen[key].to(output.dtype)

    # -- dependency probe --------------------------------------------------------------------------
    def _probe(self, key, inputs, output):
        import torch
        tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
        known = list(self.markers)
        depends = set()
        if known and any(t.requires_grad for t in tensors):
            grads = torch.autograd.grad([t.sum() for t in tensors if t.requires_grad],
                                        [self.markers[k] for k in known], allow_unused=True, retain_graph=True)
            depends = {k for k, g in zip(known, grads) if g is not None}
        self.depends[key] = depends
        self.markers[key] = torch.zeros((), requires_grad=True)
        return output + self.markers[key]

    def schedule(self, run, probe_inputs) -> list[set]:
        """Which sites are collected in which pass (every site after all it depends on)."""
        import torch
        self.markers, self.depends = {}, {}
        self.calls.clear()
        with torch.enable_grad():
            run(*probe_inputs)
        self.markers = None
        passes, known, pending = [], set(), set(self.depends)
        while pending:
            ready = {k for k in pending if self.depends[k] <= known}
            passes.append(ready)
            known |= ready
            pending -= ready
        return passes

    def run_tile(self, run, tile_inputs, core, tile_height):
        self.calls.clear()
        self.done = set()
        self.core, self.tile_height = core, tile_height
        try:
            return run(*tile_inputs)
        except _PassDone:
            return None


def run_tiled(model, canvases: list[np.ndarray], to_tensor, *, core: int, halo: int, multiple: int,
              fixed_core: bool = True) -> np.ndarray:
    """Run ``model(*tensors)`` over ``canvases`` (equal-size ``(H, W)`` or ``(H, W, C)`` arrays, each
    side a multiple of ``multiple``) tile by tile; returns the whole output, ``(channels, H, W)``
    float32 in the network's range. ``model`` is a torch module (whole-image statistics handled) or
    any callable on what ``to_tensor`` makes, returning ``(1, channels, h, w)`` (e.g. an ONNX Runtime
    session: no statistics). A model with whole-image statistics that tracing can cut runs by levels
    (:mod:`contrafuse.methods.staged`, each level with its own halo; with ``fixed_core=False`` each
    with the largest core its memory allows), any other with cores of side ``core`` and ``halo``."""
    from .. import progress

    height, width = canvases[0].shape[:2]
    if halo % multiple or core % multiple:
        raise ValueError("halo and core must be multiples of the network's size multiple")
    plan = _level_plan(model, canvases, to_tensor, multiple)
    if plan is not None:
        with progress.bar(total=0, desc=f"{plan.count} levels", unit="tile", leave=False) as bar:
            return plan.run(canvases, to_tensor, core if fixed_core else None, bar)
    tiles = plan_tiles(height, width, core, halo, multiple)
    with progress.bar(total=len(tiles), desc=f"{len(tiles)} tiles", unit="tile", leave=False) as bar:
        return _run_tiles(model, canvases, to_tensor, tiles, multiple, bar)


def _level_plan(model, canvases, to_tensor, multiple: int):
    """The levels of a torch model with sites (:mod:`contrafuse.methods.staged`), or ``None``: no
    sites, or a network that tracing cannot cut (run in passes instead)."""
    if not hasattr(model, "named_modules") or not any(is_site(m) for m in model.modules()):
        return None
    def probe(height, width):
        return [to_tensor(np.zeros((height, width, *c.shape[2:]), np.float32)) for c in canvases]

    try:
        return LevelPlan(model, multiple, probe)
    except NotStaged:
        return None


def _run_tiles(model, canvases, to_tensor, tiles: list[Tile], multiple: int, bar) -> np.ndarray:
    height, width = canvases[0].shape[:2]

    def inputs(tile):
        return [to_tensor(c[tile.y0:tile.y1, tile.x0:tile.x1]) for c in canvases]

    def core_of(tile):
        return (tile.cy0 - tile.y0, tile.cy1 - tile.y0, tile.cx0 - tile.x0, tile.cx1 - tile.x0)

    out = None

    def place(tile, result) -> None:
        nonlocal out
        if out is None:
            out = np.empty((result.shape[1], height, width), np.float32)
        y0, y1, x0, x1 = core_of(tile)
        out[:, tile.cy0:tile.cy1, tile.cx0:tile.cx1] = result[0, :, y0:y1, x0:x1]

    if not hasattr(model, "named_modules"):
        for tile in tiles:
            place(tile, np.asarray(model(*inputs(tile))))
            bar.update()
        return out

    import torch
    stats = WholeImageStatistics(model)
    try:
        if stats.sites:
            side = min(height, width, 8 * multiple) // multiple * multiple
            passes = stats.schedule(model, [to_tensor(c[:side, :side]) for c in canvases])
        else:
            passes = []
        bar.reset(total=len(tiles) * (len(passes) + 1))  # statistics passes, then the output pass
        with torch.inference_mode():
            for collect in passes:
                stats.collecting = set(collect)
                for tile in tiles:
                    stats.run_tile(model, inputs(tile), core_of(tile), tile.y1 - tile.y0)
                    bar.update()
                stats.finish_pass()
            for tile in tiles:
                place(tile, stats.run_tile(model, inputs(tile), core_of(tile), tile.y1 - tile.y0).float().cpu().numpy())
                bar.update()
        return out
    finally:
        stats.close()
