"""Property-based tests (Hypothesis): malformed and adversarial inputs thrown at ``read_image``, the
CLI and the config loader. Whatever the input, the outcome is success or a one-line error with exit
status 2 — never a traceback, never a changed input, never a partial output."""

from __future__ import annotations

import contextlib
import io
import math
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from hypothesis import example, given
from hypothesis import strategies as st

from contrafuse.cli import main
from contrafuse.errors import ContrafuseError
from contrafuse.io import read_image
from contrafuse.train.config import STAGE_KEYS, load_config, method_keys


SUFFIXES = (".png", ".tif", ".jpg", ".bmp")
# Pillow modes and the arrays that make them: odd channel counts, palettes, 1-bit, 16/32-bit, float.
MODES = {
    "1": (np.bool_, None), "L": (np.uint8, None), "LA": (np.uint8, 2), "P": (np.uint8, None),
    "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4), "I;16": (np.uint16, None), "I": (np.int32, None),
    "F": (np.float32, None), "CMYK": (np.uint8, 4),
}
FORMATS_FOR_MODE = {  # which file types can hold which mode
    "1": SUFFIXES, "L": SUFFIXES, "LA": (".png", ".tif"), "P": (".png", ".tif", ".bmp"),
    "RGB": SUFFIXES, "RGBA": (".png", ".tif"), "I;16": (".png", ".tif"), "I": (".tif",),
    "F": (".tif",), "CMYK": (".jpg", ".tif"),
}
# File names a user might have: spaces, accents, non-Latin scripts, emoji, leading dashes.
names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"),
                                       exclude_characters="/\\\x00"),
                min_size=1, max_size=20).filter(lambda s: s.strip(". ") == s and s not in (".", ".."))


@st.composite
def images(draw):
    """An image file's bytes in any mode Pillow writes, 1x1 upwards, perhaps cut short."""
    mode = draw(st.sampled_from(sorted(MODES)))
    suffix = draw(st.sampled_from(FORMATS_FOR_MODE[mode]))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    dtype, channels = MODES[mode]
    shape = (height, width) if channels is None else (height, width, channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype is np.float32:
        array = rng.normal(0, draw(st.sampled_from([1e-3, 1.0, 1e30])), shape).astype(np.float32)
        if draw(st.booleans()):  # NaN and infinities in a float TIFF
            array.flat[rng.integers(0, array.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif dtype is np.bool_:
        array = rng.random(shape) > 0.5
    else:
        array = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=np.int64).astype(dtype)
    if mode == "P":
        image = Image.fromarray(array, "L").convert("P")
    elif mode == "CMYK":
        image = Image.fromarray(array[..., :3], "RGB").convert("CMYK")
    elif mode == "I;16":
        image = Image.fromarray(array)
    else:
        image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format=Image.registered_extensions()[suffix])
    data = buffer.getvalue()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data) - 1))]
    return suffix, data


def huge_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels but holds almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


any_file = st.one_of(
    images(),
    st.tuples(st.sampled_from(SUFFIXES), st.binary(max_size=300)),
    st.tuples(st.just(".png"), st.tuples(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)).map(lambda wh: huge_png(*wh))),
)


def _result_or_error(func, path: Path):
    """``func(path)``, or None after checking its error is one line naming ``path``."""
    try:
        return func(path)
    except ContrafuseError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message, message
        return None


def _read_or_error(path: Path):
    return _result_or_error(read_image, path)


def _load_text_or_error(loader, text: str, name: str):
    """Write ``text`` to a file called ``name`` and load it with ``loader`` (see _result_or_error)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        return _result_or_error(loader, path)


@given(any_file)
def test_read_image_returns_a_unit_image_or_a_one_line_error(item):
    suffix, data = item
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        image = _read_or_error(path)
        assert path.read_bytes() == data  # reading never modifies the file
    if image is not None:
        assert image.dtype == np.float32 and image.ndim in (2, 3)
        assert image.ndim == 2 or image.shape[2] == 3
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0


def run_cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("contrafuse: error:"), err


@given(any_file, any_file, names, names, st.sampled_from(["average", "dwt", "gff"]))
def test_cli_fuse_succeeds_or_fails_cleanly(first, second, name_a, name_b, method):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ir = tmp / "in put" / f"{name_a}{first[0]}"
        vis = tmp / "in put" / f"vis {name_b}{second[0]}"
        ir.parent.mkdir()
        ir.write_bytes(first[1])
        vis.write_bytes(second[1])
        out = tmp / "out dir" / f"fused {name_a}.png"
        code, err = run_cli("fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(out), "--method", method,
                            "--resize", "vis")
        assert ir.read_bytes() == first[1] and vis.read_bytes() == second[1]
        if code == 0:
            written = read_image(out)
            assert written.shape[:2] == read_image(ir).shape[:2]
        else:
            assert_one_line_error(code, err)
            assert not out.exists()
        leftovers = [p.name for p in out.parent.glob(".tmp-*")] if out.parent.exists() else []
        assert not leftovers  # no partial output left behind


@given(st.lists(any_file, min_size=1, max_size=4), st.lists(names, min_size=1, max_size=4, unique=True))
def test_cli_folder_fuse_fuses_the_good_pairs_and_reports_the_rest(files, stems):
    good = (np.arange(48, dtype=np.uint8).reshape(6, 8) * 5)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ir_dir, vis_dir, out_dir = tmp / "ir dir", tmp / "vis dir", tmp / "fused"
        ir_dir.mkdir(), vis_dir.mkdir()
        for stem, (suffix, data) in zip(stems, files):
            (ir_dir / f"{stem}{suffix}").write_bytes(data)
            Image.fromarray(good).save(vis_dir / f"{stem}.png")
        before = {p: p.read_bytes() for p in [*ir_dir.iterdir(), *vis_dir.iterdir()]}
        code, err = run_cli("fuse", "--ir-dir", str(ir_dir), "--vis-dir", str(vis_dir), "--out-dir", str(out_dir),
                            "--method", "average", "--resize", "ir")
        assert {p: p.read_bytes() for p in before} == before
        assert "Traceback" not in err
        if code == 2 and err.startswith("contrafuse: error:"):
            assert len(err.strip().splitlines()) == 1  # nothing could be paired at all
            return
        readable = {stem for stem, (suffix, data) in zip(stems, files)
                    if _read_or_error(ir_dir / f"{stem}{suffix}") is not None}
        written = {p.stem for p in out_dir.glob("*.png")}
        assert written == readable  # every good pair fused, nothing else written
        assert code == (0 if written == set(stems[: len(files)]) else 2)
        assert not list(out_dir.glob(".tmp-*"))


# Values of every YAML type, including ones no key accepts.
yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
VALID = {"method": "clfnet", "split": "tno", "lr": 1e-3, "batch_size": 2, "patch_size": 64, "stride": 32,
         "stages": [{"name": "train", "epochs": 1}]}
KEYS = method_keys("clfnet")


@st.composite
def configs(draw):
    """A valid config with some keys dropped, replaced by arbitrary values, or added."""
    cfg = dict(VALID)
    for key in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=2)):
        cfg.pop(key, None)
    for key in draw(st.lists(st.sampled_from(sorted(KEYS) + ["nonsense key"]), max_size=3)):
        cfg[key] = draw(yaml_values)
    if draw(st.booleans()):
        cfg["stages"] = [{draw(st.sampled_from(sorted(STAGE_KEYS) + ["bogus"])): draw(yaml_values)}]
    return cfg


@example(yaml.safe_dump({**VALID, "lr": float("nan")}))
@example(yaml.safe_dump({**VALID, "tau": float("inf")}))
@given(st.one_of(configs().map(lambda c: yaml.safe_dump(c, allow_unicode=True)),
                 st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_config_loader_accepts_or_names_the_problem(text):
    cfg = _load_text_or_error(load_config, text, "experiment config.yaml")
    if cfg is None:
        return
    for name, key in KEYS.items():  # what loads satisfies the declared table
        if key.required:
            assert name in cfg
        if name in cfg and key.minimum is not None and isinstance(cfg[name], (int, float)):
            assert math.isfinite(cfg[name]) and cfg[name] >= key.minimum
    assert all(isinstance(stage, dict) and stage["epochs"] >= 1 for stage in cfg["stages"])


@given(st.text(max_size=200))
def test_cli_train_with_any_config_text_never_tracebacks(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        code, err = run_cli("train", "clfnet", "--config", str(path), "--max-steps", "0", "--out", str(Path(tmp) / "run"))
        assert code == 2  # arbitrary text is never a complete config
        assert_one_line_error(code, err)


@st.composite
def benchmark_configs(draw):
    """A benchmark config mixing valid entries with arbitrary values under real and unknown keys."""
    method = st.one_of(st.sampled_from(["gff", "dwt", "no-such-method"]),
                       st.fixed_dictionaries({"name": st.sampled_from(["gff", "average"])},
                                             optional={"label": yaml_values, "options": yaml_values,
                                                       "bogus": yaml_values}))
    pieces = {
        "methods": st.lists(method, max_size=3),
        "metrics": st.lists(st.sampled_from(["EN", "SD", "Qabf", "XYZ"]), max_size=3),
        "conventions": st.lists(st.sampled_from(["standard", "legacy", "nope"]), max_size=2),
        "datasets": st.lists(st.one_of(st.sampled_from(["tno", "vifb", "mars"]),
                                       st.dictionaries(st.sampled_from(["name", "suite", "dataset", "every", "x"]),
                                                       yaml_values, max_size=3)), max_size=2),
        "grids": st.dictionaries(st.sampled_from(["images", "box", "include_sources", "y"]), yaml_values, max_size=2),
        "complexity": st.dictionaries(st.sampled_from(["flops_size", "runtime_size"]), yaml_values, max_size=2),
    }
    cfg = {key: draw(value) for key, value in pieces.items() if draw(st.booleans())}
    for key in draw(st.lists(st.sampled_from([*pieces, "paper", "misalignment", "unknown"]), max_size=2)):
        cfg[key] = draw(yaml_values)
    return cfg


@given(st.one_of(benchmark_configs().map(lambda c: yaml.safe_dump(c, allow_unicode=True)), st.text(max_size=200)))
def test_benchmark_config_loader_accepts_or_names_the_problem(text):
    from contrafuse.bench.config import load_benchmark_config
    from contrafuse.bench.suites import SUITES

    cfg = _load_text_or_error(load_benchmark_config, text, "my bench.yaml")
    if cfg is None:
        return
    from contrafuse.methods import METHODS
    from contrafuse.metrics import METRICS
    assert all((m if isinstance(m, str) else m["name"]) in METHODS for m in cfg.get("methods", []))
    assert all(m in METRICS for m in cfg.get("metrics", []))
    assert all(d in SUITES for d in cfg.get("datasets", []) if isinstance(d, str))
