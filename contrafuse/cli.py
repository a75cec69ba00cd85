"""Command-line interface: ``contrafuse <command> ...`` (also ``python -m contrafuse``).

Every problem with the user's input is printed as one line ``contrafuse: error: <file>: <problem>``
with exit status 2; ``--debug`` shows the traceback instead. Output options are checked before any
work; progress bars are drawn only on a terminal (and never with ``--quiet``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import __version__, progress
from .api import RESIZE_HINT_CLI, fuse_images, read_sources
from .errors import ContrafuseError
from .io import (HIGH_BIT_RULES, RECOLOUR_RULES, OutputError, check_folder_writable, check_output_free,
                 check_output_image, check_writable, image_size, pair_folders, unmatched_names, write_image)
from .jobs import FuseJob
from .io import list_images as list_images_by_name
from .methods import DEFAULT_METHOD, METHODS, create_method
from .precision import PRECISIONS

EXIT_BAD_INPUT = 2

COMMANDS: dict = {}


def command(name: str):
    def decorator(func):
        COMMANDS[name] = func
        return func
    return decorator


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _method_options() -> dict[str, list]:
    """Every command-line option the registered methods declare: keyword -> [(method, option)]."""
    declared: dict[str, list] = {}
    for name in METHODS.names():
        for option in METHODS.get(name).cli_options():
            declared.setdefault(option.keyword, []).append((name, option))
    return declared


def _add_fusion_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default=None, help=f"fusion method (default: {DEFAULT_METHOD}); see 'contrafuse methods'")
    parser.add_argument("--resize", choices=["ir", "vis"], help="resample this input to the other's size when sizes differ")
    from .registration import MOTIONS

    parser.add_argument("--register", choices=list(MOTIONS),
                        help="first register the infrared image onto the visible one (any sizes; a pair that cannot be "
                        "registered is refused); see docs/cameras.md")
    parser.add_argument("--bits", type=int, choices=[8, 16], default=8, help="output depth (16-bit: grey PNG/TIFF)")
    _add_high_bit_rule(parser)
    from .models import MODEL_SPECS

    clipping = [name for name, spec in MODEL_SPECS.items() if any(p.recolour == "clip" for p in spec.protocols.values())]
    parser.add_argument("--recolour", choices=list(RECOLOUR_RULES),
                        help="how a colour source's chroma returns to the fused luma: " +
                        "; ".join(f"{k}: {v}" for k, v in RECOLOUR_RULES.items()) +
                        f" (default: the method's own, clip for {', '.join(clipping)} as its paper, else keep_luma)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_method_options(parser)


def _add_high_bit_rule(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--high-bit-rule", choices=list(HIGH_BIT_RULES), default="minmax",
                        help="how 16-bit/float inputs map to [0, 1]: " + "; ".join(f"{k}: {v}" for k, v in HIGH_BIT_RULES.items()))


def _add_method_options(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """One flag per option keyword the methods declare (``only``: these keywords alone); its help
    joins the methods' own texts and names the methods that take it."""
    for keyword, entries in _method_options().items():
        if only is not None and keyword not in only:
            continue
        helps = list(dict.fromkeys(option.help for _, option in entries))
        choices = list(dict.fromkeys(c for _, option in entries for c in option.choices)) or None
        first = entries[0][1]
        defaults = {n: option.default for n, option in entries if option.default is not None}
        text = "; ".join(helps) + (f" (default: {', '.join(f'{n} {d}' for n, d in defaults.items())})" if defaults
                                   else f" [{', '.join(sorted({n for n, _ in entries}))}]")
        if first.switch:
            parser.add_argument(f"--{keyword.replace('_', '-')}", dest=f"option_{keyword}", action="store_const",
                                const=True, help=text)
        else:
            parser.add_argument(f"--{keyword.replace('_', '-')}", dest=f"option_{keyword}", type=first.type,
                                choices=choices, metavar=None if choices else (first.metavar or keyword.upper()), help=text)


def _add_video_options(parser: argparse.ArgumentParser) -> None:
    from .models import MODEL_SPECS
    from .video import ALIGNMENTS, CODECS, DEFAULT_STABILISE

    per_image = [name for name, spec in MODEL_SPECS.items() if any(p.batchnorm == "image" for p in spec.protocols.values())]

    parser.add_argument("--ir-video", help="infrared video file, or folder of frames (natural name order); with "
                        "--vis-video and -o (a .mp4/.mkv/.avi/.mov video, or a folder for the frames)")
    parser.add_argument("--vis-video", help="visible video file, or folder of frames")
    parser.add_argument("--codec", choices=list(CODECS), help="video codec: " + "; ".join(
        f"{name}: {codec.about}" for name, codec in CODECS.items()) + " (default libx264)")
    parser.add_argument("--quality", type=int, help="the codec's constant quality (CRF or q scale; lower is better)")
    parser.add_argument("--fps", type=float, help="frame rate of the output, and of frame-folder inputs (default: the "
                        "infrared video's, else 25)")
    parser.add_argument("--align", choices=list(ALIGNMENTS), help="pair frames by index (default; stops at the "
                        "shorter) or by timestamp (each infrared frame with the nearest visible frame)")
    parser.add_argument("--stabilise", type=float, nargs="?", const=DEFAULT_STABILISE, metavar="STRENGTH",
                        help="smooth per-frame BatchNorm statistics over time, for protocols that normalise with "
                        f"each image's own ({', '.join(per_image)}); strength in [0, 1), default {DEFAULT_STABILISE}")


def _method_request(args) -> tuple[str, dict]:
    """The method named by ``--method`` and the options given for it on the command line; an
    option the method does not take is a one-line error."""
    name = args.method or DEFAULT_METHOD
    accepted = {option.keyword for option in METHODS.get(name).cli_options()}
    options = {}
    for keyword in _method_options():
        value = getattr(args, f"option_{keyword}", None)
        if value is None:
            continue
        if keyword not in accepted:
            raise ContrafuseError(None, f"--{keyword.replace('_', '-')} does not apply to method {name!r}")
        options[keyword] = value
    if getattr(args, "recolour", None):  # every method takes it (create_method)
        options["recolour"] = args.recolour
    return name, options


def _make_method(args):
    name, options = _method_request(args)
    return create_method(name, **options)


def _read_pair(ir: Path, vis: Path, out: Path, args) -> tuple:
    """Refuse an output that is an input (or exists, without --overwrite), then read the pair and
    refuse an output that cannot hold its result (16 bits for a colour result), all before fusing."""
    check_output_free(out, (ir, vis), overwrite=args.overwrite)
    pair = read_sources(ir, vis, resize=args.resize, high_bit_rule=args.high_bit_rule, hint=RESIZE_HINT_CLI,
                        register=args.register)
    check_output_image(out, args.bits, colour=any(image.ndim == 3 for image in pair))
    return pair


def run_fuse_job(job: FuseJob, methods=None) -> int:
    """Run a single-pair job (here, or in the worker with its ``methods`` cache) and say so."""
    job.run(methods)
    print(f"wrote {job.output}")
    return 0


def _fuse_video(args) -> int:
    """``fuse --ir-video A --vis-video B -o OUT``: two sequences (video files or frame folders) fused
    frame by frame into a video or a folder of frames (:mod:`contrafuse.video`)."""
    from .video import VideoJob

    if args.ir or args.vis or args.ir_dir or args.vis_dir or args.out_dir:
        raise ContrafuseError(None, "use --ir-video, --vis-video and -o without --ir/--vis or --ir-dir/--vis-dir/--out-dir")
    missing = [flag for flag, val in (("--ir-video", args.ir_video), ("--vis-video", args.vis_video),
                                      ("-o", args.output)) if not val]
    if missing:
        raise ContrafuseError(None, f"missing {', '.join(missing)}")
    job = VideoJob(args.ir_video, args.vis_video, args.output, align=args.align or "index", fps=args.fps,
                   codec=args.codec, quality=args.quality, fmt=args.format, bits=args.bits, resize=args.resize,
                   high_bit_rule=args.high_bit_rule, overwrite=args.overwrite, hint=RESIZE_HINT_CLI)
    result = job.run(_make_method(args), stabilise=args.stabilise)
    if result.note:
        print(f"note: {result.note}")
    change = result.stability
    print(f"temporal change per frame: fused {change['fused'] * 255:.3f} grey levels, sources "
          f"{(change['ir'] + change['vis']) / 2 * 255:.3f} (ratio {change['ratio']:.3f})")
    print(f"wrote {result.output}: {result.frames} frames of {result.size[0]}x{result.size[1]} at {result.fps:g} fps")
    return 0


@command("fuse")
def cmd_fuse(args) -> int:
    if any(v is not None for v in (args.ir_video, args.vis_video, args.codec, args.quality, args.fps, args.align,
                                   args.stabilise)):
        if args.register:
            raise ContrafuseError("--register", "registers image pairs, not video")
        return _fuse_video(args)
    if args.register and args.resize:
        raise ContrafuseError("--register", "registration resamples the infrared image onto the visible grid; drop --resize")
    single = args.ir or args.vis or args.output
    folder = args.ir_dir or args.vis_dir or args.out_dir
    if single and folder:
        raise ContrafuseError(None, "use either --ir/--vis/-o or --ir-dir/--vis-dir/--out-dir, not both")
    if single:
        missing = [flag for flag, val in (("--ir", args.ir), ("--vis", args.vis), ("-o", args.output)) if not val]
        if missing:
            raise ContrafuseError(None, f"missing {', '.join(missing)}")
        job = FuseJob(args.ir, args.vis, args.output, *_method_request(args), resize=args.resize, bits=args.bits,
                      high_bit_rule=args.high_bit_rule, overwrite=args.overwrite, register=args.register)
        job.check()  # before a learned model spends seconds loading and fusing
        from . import distributed

        if distributed.launched() and distributed.rank() > 0:  # under torchrun one pair is fused once, by process 0
            return 0
        if METHODS.get(job.method).uses_torch and job.options.get("device") in (None, "cpu"):  # an idle worker holds no GPU
            from . import worker

            if (not args.debug and worker.enabled() and worker.worth_serving(job.ir, job.vis)
                    and (rc := worker.delegate(job)) is not None):
                return rc
        return run_fuse_job(job)
    missing = [flag for flag, val in (("--ir-dir", args.ir_dir), ("--vis-dir", args.vis_dir), ("--out-dir", args.out_dir)) if not val]
    if missing:
        raise ContrafuseError(None, "give --ir, --vis and -o, or --ir-dir, --vis-dir and --out-dir" if len(missing) == 3 else f"missing {', '.join(missing)}")
    from . import distributed

    out_dir = Path(args.out_dir)
    check_output_image(out_dir / f"name.{args.format}", args.bits)
    pairs = pair_folders(args.ir_dir, args.vis_dir)
    group = distributed.join() if distributed.launched() else distributed.Group()
    try:
        check_writable(out_dir / f".contrafuse-write-test-{group.rank}.png")
        method = _make_method(args)
        failed = _report_unmatched(args.ir_dir, args.vis_dir) if group.is_main else 0
        # under torchrun each process fuses a disjoint shard: every world_size-th pair
        jobs = [FolderJob(pair.name, out_dir / f"{pair.name}.{args.format}", (pair.first, pair.second),
                          read=lambda out, pair=pair: _read_pair(pair.first, pair.second, out, args),
                          compute=lambda images, pair=pair: fuse_images(*images, method, (str(pair.first), str(pair.second))),
                          write=lambda out, image: write_image(out, image, bits=args.bits, overwrite=args.overwrite))
                for pair in pairs[group.rank::group.world_size]]
        return _run_folder(jobs, f"fusing ({method.name})", "fused", out_dir, args.overwrite, failed, group)
    finally:
        group.close()


@dataclass
class FolderJob:
    """One item of a folder command: ``read(out)`` -> data, ``compute(data)`` -> result,
    ``write(out, result)``; ``inputs`` are the files an existing ``out`` must not be."""
    name: str
    out: Path
    inputs: tuple
    read: Callable
    compute: Callable
    write: Callable


def _run_folder(jobs: list[FolderJob], label: str, done: str, out_dir: Path, overwrite: bool, failed: int = 0,
                group=None) -> int:
    """Folder mode. An output that exists is skipped (unless ``overwrite``; one that is an input
    goes on to ``read``, which refuses it); a failing item is reported and the rest go on. Reading
    the next items and writing the finished ones run in two background threads while the current
    item computes, so a model does not wait for the disk (image decoding and encoding release the
    GIL). A write that finds the disk full (or the file system read-only) stops the run: the items
    not yet fused are counted as not attempted. Prints one summary (summed over the processes of a
    torchrun launch ``group``); exit status 2 if anything failed anywhere."""
    from tqdm import tqdm

    made = skipped = 0
    stopped: OutputError | None = None
    main_process = group is None or group.is_main
    todo = []
    for job in jobs:
        if job.out.exists() and not overwrite and not any(_same_file(job.out, s) for s in job.inputs):
            skipped += 1
            if main_process:
                tqdm.write(f"skip {job.name}: {job.out} exists (use --overwrite)", file=sys.stderr)
        else:
            todo.append(job)

    def report(job: FolderJob, exc: ContrafuseError) -> None:
        nonlocal failed, stopped
        failed += 1
        tqdm.write(f"fail {job.name}: {exc}", file=sys.stderr)
        if isinstance(exc, OutputError) and exc.stops_run and stopped is None:
            stopped = exc

    with ThreadPoolExecutor(1, thread_name_prefix="read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="write") as writer:
        reads = deque((job, reader.submit(job.read, job.out)) for job in todo[:2])  # read two ahead
        upcoming = iter(todo[2:])
        writes: deque = deque()
        attempted = 0
        for _ in progress.bar(range(len(todo)), desc=label, unit="item", hide=not main_process):
            if stopped is not None:
                break
            attempted += 1
            job, pending = reads.popleft()
            following = next(upcoming, None)
            if following is not None:
                reads.append((following, reader.submit(following.read, following.out)))
            try:
                check_output_free(job.out, job.inputs, overwrite=True)  # an input is never replaced
                result = job.compute(pending.result())
            except ContrafuseError as exc:
                report(job, exc)
                continue
            writes.append((job, writer.submit(job.write, job.out, result)))
            while writes and (len(writes) > 2 or writes[0][1].done()):  # at most two results held in memory
                written, future = writes.popleft()
                try:
                    future.result()
                    made += 1
                except ContrafuseError as exc:
                    report(written, exc)
        for written, future in writes:
            try:
                future.result()
                made += 1
            except ContrafuseError as exc:
                report(written, exc)
    left = len(todo) - attempted
    if stopped is not None:
        tqdm.write(f"stopped: nothing more can be written to {out_dir} ({stopped.problem})", file=sys.stderr)
    if group is not None and group.active:
        made, skipped, failed, left = (int(v) for v in group.sum([made, skipped, failed, left]))
    if main_process:
        print(f"{made} {done}, {skipped} skipped, {failed} failed{f', {left} not attempted' if left else ''} "
              f"-> {out_dir}")
    # under torchrun process 0 reports for all (the launcher exits 1 when any process exits non-zero)
    return EXIT_BAD_INPUT if (failed or left) and main_process else 0


def _report_unmatched(first, second) -> int:
    """Print one 'fail' line per image without a partner; return how many."""
    lines = unmatched_names(first, second)
    for line in lines:
        print(f"fail {line}", file=sys.stderr)
    return len(lines)


@command("train")
def cmd_train(args) -> int:
    from .train.config import load_config
    from .train.loop import train
    from .train.recipes import RECIPES

    if args.point:
        from .train.sweep import load_point
        cfg = load_point(args.config, args.point, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
    if args.max_steps is not None and args.max_steps < 1:
        raise ContrafuseError("--max-steps", f"must be at least 1, not {args.max_steps}")
    if args.precision:
        cfg["precision"] = args.precision
    if cfg["method"] != args.method:
        raise ContrafuseError(args.config, f"config is for method {cfg['method']!r}, not {args.method!r}")
    if args.export:
        from .train.run_folder import export_checkpoint
        export = Path(args.export)
        if export.suffix != ".safetensors":
            raise ContrafuseError(export, "exported weights go to a .safetensors file")
        check_writable(export)
        path = export_checkpoint(args.out or cfg["output"], RECIPES.get(args.method)(), cfg, args.export)
        print(f"exported {path}")
        return 0
    def stop(signum, frame):  # a SIGTERM (job schedulers, kill) checkpoints like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    out = train(cfg, RECIPES.get(args.method)(), out_dir=args.out, resume=args.resume,
                max_steps=args.max_steps, device=args.device)
    print(f"training output in {out}")
    return 0


@command("sweep")
def cmd_sweep(args) -> int:
    from .train import sweep

    if args.jobs < 1:
        raise ContrafuseError("--jobs", f"must be at least 1, not {args.jobs}")
    if args.output and args.action != "summarise":
        raise ContrafuseError("-o", "only 'summarise' writes a table")
    if args.output:
        out = Path(args.output)
        if out.suffix.lower() not in (".csv", ".md"):
            raise ContrafuseError(out, "the table goes to a .csv or .md file")
        check_output_free(out, overwrite=args.overwrite)
        check_writable(out)
    points = sweep.collect(args.sweeps, args.only)  # every point resolved and validated before any work
    if args.action == "run":
        def stop(signum, frame):  # a SIGTERM stops the sweep as Ctrl-C does: each run checkpoints
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        return sweep.run(points, args.jobs, args.device)
    if args.action == "status":
        for point in points:
            state = point.state()
            detail = sweep.progress(point) if state == "started" else ""
            print(f"{state:8s} {point.name}{f' ({detail})' if detail else ''}")
        return 0
    rows = sweep.summary_rows(points)
    print(sweep.markdown_table(rows), end="")
    if args.output:
        from .io import write_csv_atomic, write_text_atomic

        if out.suffix.lower() == ".csv":
            write_csv_atomic(out, rows, list(dict.fromkeys(c for row in rows for c in row)))
        else:
            write_text_atomic(out, sweep.markdown_table(rows))
        print(f"wrote {out}")
    return 0


@command("weights")
def cmd_weights(args) -> int:
    from .models import MODEL_SPECS
    from .weights import fetch_vgg19, home, model_weights

    if args.action == "where":
        print(home())
        return 0
    official = [s for s in MODEL_SPECS.values() if not s.weights.packaged]
    names = {"vgg19": None, **{s.name: s for s in official}}
    wanted = list(names) if args.name == "all" else [args.name]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise ContrafuseError(None, f"no weights named {unknown[0]!r}; choose from all, {', '.join(names)}")
    if args.source and wanted != ["vgg19"]:
        raise ContrafuseError("--from", "only the VGG-19 weights take a local file (others: CONTRAFUSE_WEIGHTS_DIR)")
    for name in wanted:
        if name == "vgg19":
            print(f"VGG-19 weights ready: {fetch_vgg19(args.source, force=args.force)}")
        else:
            for source in names[name].weight_files:
                print(f"{name} weights ready: {model_weights(names[name], source, force=args.force)}")
    return 0


@command("evaluate")
def cmd_evaluate(args) -> int:
    from tqdm import tqdm

    out = Path(args.output)  # the output first: checked in a moment, before the metric code loads
    if args.format is None and out.suffix.lower() not in (".csv", ".json"):
        raise ContrafuseError(out, "results go to a .csv or .json file (or give --format csv|json)")
    check_output_free(out, overwrite=args.overwrite)
    check_writable(out)

    from .metrics import METRICS, conventions_used, evaluate, summarise
    from .metrics.report import write_results

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else list(METRICS)
    used = conventions_used(metrics, args.convention)  # validates names before any work
    pairs = pair_folders(args.ir_dir, args.vis_dir)
    fused = list_images_by_name(args.fused_dir)
    check_output_free(out, [*fused.values(), *(p for pair in pairs for p in (pair.first, pair.second))], overwrite=True)
    failed = _report_unmatched(args.ir_dir, args.vis_dir)
    rows = []
    for pair in progress.bar(pairs, desc=f"evaluating ({args.convention})", unit="image"):
        if pair.name not in fused:
            failed += 1
            tqdm.write(f"fail {pair.name}: no fused image named {pair.name}.* in {args.fused_dir}", file=sys.stderr)
            continue
        try:
            _check_same_size(pair.first, pair.second, fused[pair.name])
            values = evaluate(pair.first, pair.second, fused[pair.name], metrics=metrics, convention=args.convention,
                              high_bit_rule=args.high_bit_rule)
        except ContrafuseError as exc:
            failed += 1
            tqdm.write(f"fail {pair.name}: {exc}", file=sys.stderr)
            continue
        rows.append({"image": pair.name, **values})
    if not rows:
        raise ContrafuseError(args.fused_dir, "no pair could be evaluated")
    mean, std = summarise(rows, metrics)
    out = write_results(out, rows, mean, std, metrics, args.convention, used, fmt=args.format,
                        overwrite=args.overwrite)
    print(f"wrote {out} ({len(rows)} images evaluated, {failed} failed, convention {args.convention})")
    return EXIT_BAD_INPUT if failed else 0


def _check_same_size(*paths: Path) -> None:
    """The images of one evaluated triple have one size, or a one-line error naming the files."""
    sizes = [image_size(path) for path in paths]
    for path, size in zip(paths[1:], sizes[1:]):
        if size != sizes[0]:
            raise ContrafuseError(path, f"size {size[0]}x{size[1]} differs from {paths[0]} ({sizes[0][0]}x{sizes[0][1]})")


@command("masks")
def cmd_masks(args) -> int:
    from .data.masks import infrared_mask, mri_mask
    from .io import list_images, luminance, read_image

    images = list_images(args.ir_dir)
    if not images:
        raise ContrafuseError(args.ir_dir, "folder holds no images")
    if args.kind == "infrared":
        make = infrared_mask
    else:
        def make(image):
            return mri_mask(image, segmentation=args.segmentation)
    out_dir = Path(args.output)
    check_writable(out_dir / ".contrafuse-write-test.png")
    jobs = [FolderJob(name, out_dir / f"{name}.png", (path,), read=lambda out, path=path: luminance(read_image(path)),
                      compute=make, write=lambda out, mask: write_image(out, mask, overwrite=args.overwrite))
            for name, path in sorted(images.items())]
    return _run_folder(jobs, f"{args.kind} masks", "masks", out_dir, args.overwrite)


@command("benchmark")
def cmd_benchmark(args) -> int:
    from .bench.config import load_benchmark_config
    from .bench.runner import run_benchmark

    load_benchmark_config(args.config)  # a bad config, then an unwritable output folder: before any work
    check_folder_writable(args.output or Path("runs") / "benchmark" / Path(args.config).stem)
    if args.cache:
        check_folder_writable(args.cache)
    out = run_benchmark(args.config, args.output, quick=args.quick, cache_dir=args.cache)
    print(f"benchmark report: {out / 'report.md'}")
    return 0


@command("export")
def cmd_export(args) -> int:
    from .methods.onnx import export_onnx

    out = Path(args.output)
    if out.suffix.lower() != ".onnx":
        raise ContrafuseError(out, "the output must be a .onnx file")
    check_output_free(out, overwrite=args.overwrite)
    args.method = args.method or DEFAULT_METHOD
    method = _make_method(args)
    if not method.uses_torch:
        raise ContrafuseError(None, f"only the learned methods export to ONNX, not {method.name!r}")
    check_writable(out)
    print(f"wrote {export_onnx(method, out)}")
    return 0


@command("task-eval")
def cmd_task_eval(args) -> int:
    from .tasks import detection_table, segmentation_table, write_table

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ContrafuseError(None, "--methods lists no method")
    out = Path(args.output)
    check_output_free(out, overwrite=args.overwrite)
    check_writable(out)
    if args.task == "detection":
        from .tasks.detection import HogPeopleDetector, OnnxDetector
        if args.detector:
            ids = None
            if args.class_ids:
                try:
                    ids = {int(v): i for i, v in enumerate(args.class_ids.split(","))}
                except ValueError:
                    raise ContrafuseError(None, f"--class-ids must be comma-separated integers, not {args.class_ids!r}") from None
            detector = OnnxDetector(args.detector, layout=args.detector_layout, class_ids=ids)
        else:
            detector = HogPeopleDetector()
        print(f"detector: {detector.name}")
        rows = detection_table(args.ir_dir, args.vis_dir, args.labels, methods, detector)
        column = "mAP50"
    else:
        from .tasks.segmentation import OnnxSegmenter
        if not args.segmenter or not args.classes:
            raise ContrafuseError(None, "segmentation needs --segmenter MODEL.onnx and --classes N")
        segmenter = OnnxSegmenter(args.segmenter)
        rows = segmentation_table(args.ir_dir, args.vis_dir, args.labels, methods, segmenter, args.classes)
        column = "mIoU"
    write_table(rows, out, overwrite=args.overwrite)
    for row in rows:
        print(f"{row['method']:<16} {column} {row[column]}")
    print(f"wrote {out}")
    return 0


@command("serve")
def cmd_serve(args) -> int:
    try:
        from .web.app import serve
    except ImportError as exc:
        raise ContrafuseError(None, f"the web app needs {exc.name}: pip install fastapi uvicorn python-multipart fastapi-offline") from None
    serve(args.host, args.port)
    return 0


@command("worker")
def cmd_worker(args) -> int:
    from . import worker

    if args.action == "stop":
        print(f"stopped {worker.stop_all()} worker(s) of this user (any version; a busy one after its run)")
        return 0
    running = worker.workers()
    for status in running:
        if status.get("busy"):
            print(f"busy: a worker is fusing (socket {status['socket']}); its status comes when the run ends")
        else:
            print(f"pid {status['pid']}: served {status['served']} run(s) in {status['uptime_s']} s; "
                  f"models loaded: {', '.join(status['methods']) or 'none'}")
    if not running:
        print("no worker running")
    return 0


@command("methods")
def cmd_methods(args) -> int:
    width = max(len(n) for n in METHODS.names())
    for name in METHODS.names():
        cls = METHODS.get(name)
        marker = " (default)" if name == DEFAULT_METHOD else ""
        print(f"{name:<{width}}  {cls.description}{marker}")
        spec = getattr(cls, "spec", None)
        if spec is not None:
            print(f"{'':<{width}}    paper: {spec.citation}; {spec.parameters:,} parameters; protocols: "
                  f"{', '.join(spec.protocols)} (default {spec.default_protocol})")
            print(f"{'':<{width}}    weights: {spec.weights.source}; licence: {spec.weights.licence}")
    return 0


def _add_command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser; ``--debug`` and ``--quiet`` may also follow the command's name."""
    p = sub.add_parser(name, **kwargs)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    return p


class _Conventions:
    """The metric conventions as argparse choices, read from the metric registry only when an
    argument is checked or help is shown (importing the metrics takes seconds; with a ``metavar``
    argparse does not list the choices while it builds the parser)."""

    def __contains__(self, name) -> bool:
        from .metrics import CONVENTIONS
        return name in CONVENTIONS

    def __iter__(self):
        from .metrics import CONVENTIONS
        return iter(CONVENTIONS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contrafuse", description="Multi-modality image fusion toolkit.")
    parser.add_argument("--version", action="version", version=f"contrafuse {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars (there are none when "
                        "standard error is not a terminal)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _add_command(sub, "fuse", help="fuse one image pair, or two folders of pairs matched by base name")
    p.add_argument("--ir", help="infrared (or functional / first) image")
    p.add_argument("--vis", help="visible (or structural / second) image")
    p.add_argument("-o", "--output", help="output image path (.png default; .tif, .jpg, .bmp); with --ir-video: "
                   "a video (.mp4, .mkv, .avi, .mov) or a folder for the frames")
    p.add_argument("--ir-dir", help="folder of infrared images")
    p.add_argument("--vis-dir", help="folder of visible images")
    p.add_argument("--out-dir", help="folder for fused images (created if needed)")
    p.add_argument("--format", default="png", choices=["png", "tif", "jpg", "bmp"], help="output format in folder mode")
    _add_fusion_options(p)
    _add_video_options(p)

    _add_command(sub, "methods", help="list the fusion methods")

    p = _add_command(sub, "task-eval", help="task-driven evaluation: detection (AP50/mAP50) or segmentation (mIoU) "
                                         "on the sources and each method's fused images")
    p.add_argument("task", choices=["detection", "segmentation"])
    p.add_argument("--ir-dir", required=True)
    p.add_argument("--vis-dir", required=True)
    p.add_argument("--labels", required=True, help="detection: YOLO .txt per image; segmentation: PNG class masks")
    p.add_argument("--methods", default="ir,vis,gff,coconet,clfnet",
                   help="comma-separated; 'ir' and 'vis' are the sources themselves")
    p.add_argument("--detector", help="a YOLO-style ONNX detector (default: OpenCV's HOG people detector, person only)")
    p.add_argument("--detector-layout", choices=["yolov8", "yolov5"], default="yolov8")
    p.add_argument("--class-ids", help="the detector's class index for each label class, in order (e.g. 0,1,2)")
    p.add_argument("--segmenter", help="segmentation: an ONNX segmenter")
    p.add_argument("--classes", type=int, help="segmentation: number of classes")
    p.add_argument("-o", "--output", required=True, help="results CSV, one row per method")
    p.add_argument("--overwrite", action="store_true")

    p = _add_command(sub, "serve", help="a local web app: upload a pair, pick methods, compare and download")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)

    p = _add_command(sub, "export", help="export a learned method's network to ONNX (run it with ONNX Runtime)")
    p.add_argument("--method", default=None, help=f"a learned method (default: {DEFAULT_METHOD})")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    _add_method_options(p, only=("weights", "inference"))  # the protocol is baked into the export
    p.add_argument("--overwrite", action="store_true")

    p = _add_command(sub, "evaluate", help="compute fusion metrics for folders of sources and fused images")
    p.add_argument("--ir-dir", required=True)
    p.add_argument("--vis-dir", required=True)
    p.add_argument("--fused-dir", required=True)
    p.add_argument("--metrics", help="comma-separated short names (default: all); see docs/metrics.md")
    p.add_argument("--convention", default="standard", choices=_Conventions(), metavar="CONVENTION",
                   help="whose metric definitions: %(choices)s (default %(default)s; docs/metrics.md)")
    _add_high_bit_rule(p)
    p.add_argument("-o", "--output", required=True, help="results file (.csv or .json)")
    p.add_argument("--format", choices=["csv", "json"], help="default: from the output suffix")
    p.add_argument("--overwrite", action="store_true")

    p = _add_command(sub, "masks", help="automatic salient masks for CoCoNet's contrastive loss")
    p.add_argument("--ir-dir", required=True, help="folder of infrared (or, with --kind mri, MRI) images")
    p.add_argument("-o", "--output", required=True, help="folder for the masks (PNG, 255 = salient)")
    p.add_argument("--kind", choices=["infrared", "mri"], default="infrared",
                   help="infrared: fine-grained saliency of warm targets; mri: brightest class of an MRI segmentation")
    p.add_argument("--segmentation", choices=["som", "kmeans"], default="som",
                   help="with --kind mri: self-organising map (Li & Chi 2005, default) or intensity k-means")
    p.add_argument("--overwrite", action="store_true")

    p = _add_command(sub, "benchmark", help="fuse datasets with many methods, evaluate, write tables and plots")
    p.add_argument("config", help="benchmark YAML (see benchmarks/*.yaml)")
    p.add_argument("-o", "--output", help="output folder (default runs/benchmark/<config name>)")
    p.add_argument("--quick", action="store_true", help="two pairs, two methods (smoke run)")
    p.add_argument("--cache", help="folder for the fused images and metric values kept between runs (default: the "
                                   "output folder); benchmarks that share methods, and whose datasets of one name "
                                   "are the same images, can share one")

    p = _add_command(sub, "train", help="train a learned method from a YAML config (resumable)")
    p.add_argument("method", help="coconet or clfnet")
    p.add_argument("--config", required=True, help="experiment YAML, e.g. configs/coconet_tno.yaml")
    p.add_argument("--out", help="output folder (default: the config's 'output')")
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    p.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after this many steps")
    p.add_argument("--export", metavar="FILE", help="do not train: export the run's latest checkpoint as safetensors")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="training arithmetic (default: the config's 'precision', else auto = bf16 autocast "
                        "where the CPU/GPU has native bfloat16, fp32 otherwise)")
    p.add_argument("--point", help="with a sweep file as --config: the point to train (contrafuse sweep status lists them)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override config keys, values read as YAML: seed=3 stages.finetune.epochs=10 mam.vgg_levels=[low]")

    p = _add_command(sub, "sweep", help="train, resume and summarise the runs of sweep files (configs/sweeps/)")
    p.add_argument("action", choices=["run", "status", "summarise"],
                   help="run: train every point not done (resuming started ones); status: where each point is; "
                        "summarise: a table of the runs' recorded losses, steps and hours")
    p.add_argument("sweeps", nargs="+", help="sweep YAML files; a run folder that several share is one point")
    p.add_argument("--jobs", type=int, default=1, help="run: points trained at once, each in its own process")
    p.add_argument("--only", action="append", metavar="PATTERN", help="only points whose names match (glob; repeatable; run in the order of the globs)")
    p.add_argument("--device", default="cpu", help="run: torch device for every point")
    p.add_argument("-o", "--output", help="summarise: also write the table (.csv or .md)")
    p.add_argument("--overwrite", action="store_true")

    p = _add_command(sub, "worker", help="the background process that keeps learned models loaded between "
                                      "single-pair fuse runs (CONTRAFUSE_WORKER=off: none)")
    p.add_argument("action", choices=["status", "stop"])

    p = _add_command(sub, "weights", help="fetch and cache weights: the VGG-19 ImageNet weights CoCoNet needs, "
                                       "and the peer models' official weights")
    p.add_argument("action", choices=["fetch", "where"], help="fetch: download/verify/convert; where: print the cache folder")
    p.add_argument("name", nargs="?", default="vgg19",
                   help="vgg19 (default), a model with official weights (see 'contrafuse methods'), or all")
    p.add_argument("--from", dest="source", help="a local copy of vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    p.add_argument("--force", action="store_true", help="fetch again even if cached or found in CONTRAFUSE_WEIGHTS_DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``contrafuse <argv>``."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # train's KEY=VALUE overrides may follow its options
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") for e in extra):
            parser.parse_args(argv)  # argparse's own error for what no command takes
        args.overrides += extra
    progress.quiet = args.quiet
    return reporting_errors(lambda: COMMANDS[args.command](args), debug=args.debug)


def reporting_errors(run: Callable[[], int], *, debug: bool = False) -> int:
    """``run()``'s exit status, with the user's problems printed as one line and exit status 2
    (``debug``: raised with their traceback); the command line's and the worker's runs alike."""
    try:
        with warnings.catch_warnings():
            if not debug:  # third-party libraries' warnings (e.g. PyWavelets on tiny images) are noise here
                for library in ("PIL", "pywt", "scipy", "numpy"):
                    warnings.filterwarnings("ignore", module=library)
            return run()
    except ContrafuseError as exc:
        if debug:
            raise
        print(f"contrafuse: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        if debug:
            raise
        print("contrafuse: error: not enough memory for this input (a very large image? learned methods "
              "tile above CONTRAFUSE_TILE_MEMORY; CONTRAFUSE_MAX_PIXELS caps image size)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. 'contrafuse methods | head -1': stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # the system refused something the checks before could not foresee
        if debug or exc.errno is None:
            raise
        where = exc.filename if exc.filename is not None else None
        print(f"contrafuse: error: {ContrafuseError(where, exc.strerror or str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("contrafuse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
