"""Video: temporal stability and frames per second of every fusion method on TNO's raw sequences.

    CONTRAFUSE_WEIGHTS_DIR=../shared/peers/weights nice -n 5 python benchmarks/video.py [--frames 8] [--methods ...]

The sequences are Nato_camp, Tree and Duine of ../shared/datasets/TNO_raw_sequences (grey, 360x270,
frames in name order), their first ``--frames`` frames each at native size. Every method of
``contrafuse methods`` fuses them at its default options (``precision auto``), frame by frame as
``contrafuse fuse --ir-video`` does (:func:`contrafuse.video.fused_frames`); temporal stability is
:class:`contrafuse.video.TemporalStability` per sequence. Methods with per-frame BatchNorm
statistics run again stabilised at each of ``--strengths``, with the mean absolute difference from
their plain frames. Speed: the median seconds per frame (wall, and CPU of this process) of the
stability run at the precision ``auto`` resolves to, and of ``--speed-frames`` Nato_camp frames (after
one warm-up frame) at the other precisions and on ONNX Runtime; the first ONNX run of a method exports
it into the cache, which is not timed. Writes benchmarks/results/video.json (with the machine, the
load average and the git commit); ``python benchmarks/render_docs.py`` renders it into docs/cameras.md.
Times are of a shared 2-core machine under the recorded load: compare them within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from contrafuse.bench.timing import write_result
from contrafuse.errors import ContrafuseError
from contrafuse.io import read_image
from contrafuse.methods import METHODS, create_method
from contrafuse.video import Frame, TemporalStability, check_stabilise, fused_frames, natural_key

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "datasets" / "TNO_raw_sequences"
SEQUENCES = ("Nato_camp", "Tree", "Duine")
PRECISIONS = ("bf16", "fp32", "onnxruntime")
#: further rows for stability only: a method at other options (CoCoNet with running BatchNorm
#: statistics separates what per-frame statistics do from what the network does)
VARIANTS = {"coconet --inference standard": ("coconet", {"inference": "standard"})}


def load(name: str, frames: int) -> list[tuple[Frame, Frame]]:
    """The first ``frames`` pairs of sequence ``name``, read into memory (they are small)."""
    files = sorted((DATA / "ir").glob(f"{name}_*.bmp"), key=lambda p: natural_key(p.name))[:frames]
    return [tuple(Frame(i, i / 25, read_image(DATA / kind / f.name), str(DATA / kind / f.name))
                  for kind in ("ir", "vis")) for i, f in enumerate(files)]


def timed(frames):
    """``frames`` with the wall and CPU seconds each took to produce."""
    iterator = iter(frames)
    while True:
        wall, cpu = time.perf_counter(), time.process_time()
        item = next(iterator, None)
        if item is None:
            return
        yield item, time.perf_counter() - wall, time.process_time() - cpu


def speed(walls: list[float], cpus: list[float]) -> dict:
    return {"fps": round(1 / statistics.median(walls), 3), "cpu_seconds_per_frame": round(statistics.median(cpus), 4),
            "frames": len(walls)}


def run_sequences(method, sequences: dict, stabilise: float | None = None, plain: dict | None = None):
    """Stability per sequence, per-frame times (the first frame left out: warm-up) and the fused frames."""
    stability, walls, cpus, fused_all = {}, [], [], {}
    for name, pairs in sequences.items():
        meter, fused_all[name], differences = TemporalStability(), [], []
        for (ir, vis, fused), wall, cpu in timed(fused_frames(pairs, method, stabilise=stabilise)):
            meter.add(ir, vis, fused)
            if plain is not None:
                differences.append(float(np.abs(fused - plain[name][len(fused_all[name])]).mean()) * 255)
            fused_all[name].append(fused)
            walls.append(wall)
            cpus.append(cpu)
        result = meter.result()
        stability[name] = {"change": result["fused"] * 255, "ratio": result["ratio"],
                           "level_change": result["fused_level"] * 255, "level_ratio": result["level_ratio"]}
        if differences:
            stability[name]["difference_from_plain"] = statistics.mean(differences)
        stability[name] = {k: round(v, 4) for k, v in stability[name].items()}
    return stability, walls[1:], cpus[1:], fused_all


def method_speed(name: str, precision: str, pairs) -> dict:
    options = {"backend": "onnxruntime"} if precision == "onnxruntime" else {"precision": precision}
    method = create_method(name, **options)
    if precision == "onnxruntime":  # the export (on first use) is setup, not fusion
        list(fused_frames(pairs[:1], method))
    _, walls, cpus, _ = run_sequences(method, {"speed": pairs})
    return speed(walls, cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames of each sequence for stability")
    parser.add_argument("--speed-frames", type=int, default=3, help="timed frames at the other precisions")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--methods", nargs="+", default=METHODS.names() + list(VARIANTS))
    parser.add_argument("--no-speed", action="store_true", help="stability only")
    args = parser.parse_args()
    start_load, cpu_start, wall_start = os.getloadavg(), time.process_time(), time.perf_counter()
    sequences = {name: load(name, args.frames) for name in SEQUENCES}
    speed_pairs = load(SEQUENCES[0], args.speed_frames + 1)
    sources = {}
    for name, pairs in sequences.items():
        meter = TemporalStability()
        for ir, vis in pairs:
            meter.add(ir.image, vis.image, vis.image)
        result = meter.result()
        sources[name] = {k: round(result[k] * 255, 4) for k in ("ir", "vis", "ir_level", "vis_level")}
    methods = {}
    for name in args.methods:
        base, options = VARIANTS.get(name, (name, {}))
        method = create_method(base, **options)
        precision = getattr(method, "precision", None)
        stability, walls, cpus, plain = run_sequences(method, sequences)
        row = {"precision": precision, "stability": stability, "speed": {precision or "numpy": speed(walls, cpus)}}
        try:
            check_stabilise(method, args.strengths[0])
        except ContrafuseError:
            pass
        else:
            row["stabilised"] = {str(s): run_sequences(method, sequences, stabilise=s, plain=plain)[0]
                                 for s in args.strengths}
        del method, plain
        if precision is not None and not args.no_speed and name not in VARIANTS:
            for other in PRECISIONS:
                if other not in row["speed"]:
                    try:
                        row["speed"][other] = method_speed(name, other, speed_pairs)
                    except Exception as exc:  # noqa: BLE001  (a backend a model cannot run on is a cell, not the end)
                        row["speed"][other] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        methods[name] = row
        print(name, row, flush=True)
    write_result(HERE / "results" / "video.json", {
        "what": __doc__.split("\n\n")[2].replace("\n", " "),
        "frames_per_sequence": args.frames, "speed_frames": args.speed_frames, "size": "360x270",
        "strengths": args.strengths, "load_average_start": [round(v, 2) for v in start_load],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "cpu_minutes": round((time.process_time() - cpu_start) / 60, 2),
        "wall_minutes": round((time.perf_counter() - wall_start) / 60, 2),
        "sources": sources, "methods": methods})


if __name__ == "__main__":
    main()
