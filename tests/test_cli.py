"""Every bad input gets a one-line error naming the file, exit status 2, and no traceback."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, dataset, save
from PIL import Image

from contrafuse.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("contrafuse: error:")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_single_pair(capsys, grey_pair, tmp_path):
    ir, vis = grey_pair
    code, _, _ = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png"), "--method", "dwt")
    assert code == 0 and (tmp_path / "f.png").exists()
    assert Image.open(tmp_path / "f.png").size == Image.open(ir).size


def test_missing_file(capsys, grey_pair, tmp_path):
    _, vis = grey_pair
    code, _, err = run(capsys, "fuse", "--ir", str(tmp_path / "nope.png"), "--vis", str(vis), "-o", str(tmp_path / "f.png"))
    assert_one_line_error(code, err, "nope.png", "not found")


def test_not_an_image(capsys, grey_pair, tmp_path):
    _, vis = grey_pair
    bogus = tmp_path / "text.png"
    bogus.write_text("hello, not a png")
    code, _, err = run(capsys, "fuse", "--ir", str(bogus), "--vis", str(vis), "-o", str(tmp_path / "f.png"))
    assert_one_line_error(code, err, "text.png", "not a readable image")


def test_truncated_image(capsys, grey_pair, tmp_path, rng):
    _, vis = grey_pair
    full = save(tmp_path / "full.png", (rng.random((40, 56)) * 255).astype(np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    code, _, err = run(capsys, "fuse", "--ir", str(cut), "--vis", str(vis), "-o", str(tmp_path / "f.png"))
    assert_one_line_error(code, err, "cut.png", "cannot decode")


def test_size_mismatch_and_resize(capsys, grey_pair, tmp_path):
    ir, _ = grey_pair
    small = save(tmp_path / "small.png", np.zeros((20, 28), np.uint8))
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(small), "-o", str(tmp_path / "f.png"))
    assert_one_line_error(code, err, str(ir), "56x40", "28x20", "--resize")
    code, _, _ = run(capsys, "fuse", "--ir", str(ir), "--vis", str(small), "-o", str(tmp_path / "f.png"), "--resize", "vis")
    assert code == 0 and Image.open(tmp_path / "f.png").size == (56, 40)


def test_empty_folder(capsys, grey_pair, tmp_path):
    ir, _ = grey_pair
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "fuse", "--ir-dir", str(ir.parent), "--vis-dir", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "o"))
    assert_one_line_error(code, err, "empty", "no images")


def test_unmatched_names_are_reported_and_the_rest_fused(capsys, grey_pair, tmp_path):
    ir, vis = grey_pair
    save(ir.parent / "lonely.png", np.zeros((4, 4), np.uint8))
    code, out, err = run(capsys, "fuse", "--ir-dir", str(ir.parent), "--vis-dir", str(vis.parent),
                         "--out-dir", str(tmp_path / "o"), "--method", "average")
    assert code == 2 and "Traceback" not in err
    assert "fail" in err and "lonely" in err and "1 fused, 0 skipped, 1 failed" in out
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"{ir.stem}.png"]


def test_evaluate_reports_a_missing_fused_image_and_evaluates_the_rest(capsys, grey_pair, tmp_path):
    ir, vis = grey_pair
    save(ir.parent / "second.png", np.full((32, 32), 90, np.uint8))
    save(vis.parent / "second.png", np.full((32, 32), 30, np.uint8))
    assert run(capsys, "fuse", "--ir-dir", str(ir.parent), "--vis-dir", str(vis.parent), "--out-dir",
               str(tmp_path / "f"), "--method", "average")[0] == 0
    (tmp_path / "f" / "second.png").unlink()
    code, out, err = run(capsys, "evaluate", "--ir-dir", str(ir.parent), "--vis-dir", str(vis.parent),
                         "--fused-dir", str(tmp_path / "f"), "--metrics", "EN,SD", "-o", str(tmp_path / "e.csv"))
    assert code == 2 and "Traceback" not in err and "second" in err
    assert ir.stem in (tmp_path / "e.csv").read_text() and "1 images evaluated, 1 failed" in out


@pytest.mark.parametrize("where", ["unwritable", "folder"])
def test_unusable_output_is_a_one_line_error_before_fusing(capsys, grey_pair, tmp_path, where):
    ir, vis = grey_pair
    if where == "unwritable":
        target = "/proc/contrafuse_out.png"  # no user, root included, can create a file here
    else:
        (tmp_path / "taken").mkdir()
        target = str(tmp_path / "taken")
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", target, "--overwrite")
    assert_one_line_error(code, err, target, "cannot write" if where == "unwritable" else "is a folder")
    code, _, err = run(capsys, "fuse", "--ir-dir", str(ir.parent), "--vis-dir", str(vis.parent),
                       "--out-dir", "/proc/contrafuse_out")
    assert_one_line_error(code, err, "/proc/contrafuse_out", "cannot write")


def test_bad_max_pixels_setting_is_named(capsys, grey_pair, tmp_path, monkeypatch):
    ir, vis = grey_pair
    monkeypatch.setenv("CONTRAFUSE_MAX_PIXELS", "abc")
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png"), "--method", "gff")
    assert_one_line_error(code, err, "CONTRAFUSE_MAX_PIXELS", "abc")


def test_decompression_bomb(capsys, grey_pair, tmp_path, monkeypatch):
    ir, vis = grey_pair
    monkeypatch.setenv("CONTRAFUSE_MAX_PIXELS", "1000")
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png"))
    assert_one_line_error(code, err, str(ir), "pixel limit")


def test_output_equal_to_input(capsys, grey_pair):
    ir, vis = grey_pair
    before = ir.read_bytes()
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(ir), "--overwrite")
    assert_one_line_error(code, err, str(ir), "one of the inputs")
    assert ir.read_bytes() == before


def test_existing_output_kept_unless_overwrite(capsys, grey_pair, tmp_path):
    ir, vis = grey_pair
    out = tmp_path / "f.png"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(out))
    assert_one_line_error(code, err, str(out), "exists")
    assert out.read_bytes() == b"keep me"
    assert run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(out), "--overwrite")[0] == 0
    assert out.read_bytes() != b"keep me"


def test_unknown_method(capsys, grey_pair, tmp_path):
    ir, vis = grey_pair
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png"), "--method", "magic")
    assert_one_line_error(code, err, "magic", "gff")


def test_folder_mode_reports_bad_pair_and_continues(capsys, tmp_path, rng):
    for name in ("a", "b", "c"):
        save(tmp_path / "ir" / f"{name}.png", (rng.random((16, 16)) * 255).astype(np.uint8))
        save(tmp_path / "vis" / f"{name}.png", (rng.random((16, 16)) * 255).astype(np.uint8))
    (tmp_path / "ir" / "b.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    save(out / "c.png", np.zeros((16, 16), np.uint8))
    code, stdout, err = run(capsys, "fuse", "--ir-dir", str(tmp_path / "ir"), "--vis-dir", str(tmp_path / "vis"), "--out-dir", str(out))
    assert code == 2
    assert "1 fused, 1 skipped, 1 failed" in stdout
    assert "fail b:" in err and "b.png" in err
    assert (out / "a.png").exists() and not (out / "b.png").exists()


def test_folder_mode_equals_single_pairs_with_failures_in_between(capsys, tmp_path, rng):
    """The folder pipeline (reads ahead, writes behind) fuses each pair exactly as a single-pair
    run does, keeps going past failures at any position and reports each once."""
    names = [f"p{i}" for i in range(7)]
    for name in names:
        save(tmp_path / "ir" / f"{name}.png", (rng.random((24, 20)) * 255).astype(np.uint8))
        save(tmp_path / "vis" / f"{name}.png", (rng.random((24, 20)) * 255).astype(np.uint8))
    for bad in ("p0", "p3", "p6"):  # first, middle and last
        (tmp_path / "vis" / f"{bad}.png").write_bytes(b"not a png")
    code, stdout, err = run(capsys, "fuse", "--ir-dir", str(tmp_path / "ir"), "--vis-dir", str(tmp_path / "vis"),
                            "--out-dir", str(tmp_path / "out"), "--method", "laplacian")
    assert code == 2 and "4 fused, 0 skipped, 3 failed" in stdout
    assert sorted(line.split(":")[0] for line in err.splitlines() if line.startswith("fail")) == [
        "fail p0", "fail p3", "fail p6"]
    for name in ("p1", "p2", "p4", "p5"):
        single = tmp_path / f"{name}.png"
        assert run(capsys, "fuse", "--ir", str(tmp_path / "ir" / f"{name}.png"), "--vis",
                   str(tmp_path / "vis" / f"{name}.png"), "-o", str(single), "--method", "laplacian")[0] == 0
        assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(tmp_path / "out" / f"{name}.png")))


def test_masks_never_overwrite_their_input(capsys, tmp_path, rng):
    image = tmp_path / "ir" / "a.png"
    save(image, (rng.random((32, 32)) * 255).astype(np.uint8))
    before = image.read_bytes()
    code, stdout, err = run(capsys, "masks", "--ir-dir", str(tmp_path / "ir"), "-o", str(tmp_path / "ir"), "--overwrite")
    assert code == 2 and "0 masks, 0 skipped, 1 failed" in stdout and "one of the inputs" in err
    assert image.read_bytes() == before


def test_methods_command(capsys):
    code, out, _ = run(capsys, "methods")
    assert code == 0
    for name in ("average", "maximum", "laplacian", "dwt", "gff"):
        assert name in out


def test_module_entry_point_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "contrafuse", "fuse", "--ir", str(tmp_path / "x.png"), "--vis",
                           str(tmp_path / "y.png"), "-o", str(tmp_path / "z.png")], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "x.png" in proc.stderr
    debug = subprocess.run([sys.executable, "-m", "contrafuse", "--debug", "fuse", "--ir", str(tmp_path / "x.png"), "--vis",
                            str(tmp_path / "y.png"), "-o", str(tmp_path / "z.png")], capture_output=True, text=True, cwd=REPO, check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_real_colour_pair(capsys, tmp_path):
    root = dataset("RoadScene")
    out = tmp_path / "road.png"
    code, _, _ = run(capsys, "fuse", "--ir", str(root / "ir" / "FLIR_00006.jpg"), "--vis", str(root / "vis" / "FLIR_00006.jpg"), "-o", str(out))
    assert code == 0 and Image.open(out).mode == "RGB"


def test_running_out_of_memory_is_a_one_line_error(capsys, grey_pair, tmp_path, monkeypatch):
    """Hypothesis found a 1x1 PNG beside one declaring 1x99,999,359 pixels: resampling to that
    size raised MemoryError. Whatever runs out of memory, the CLI says so in one line."""
    from contrafuse import jobs

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(jobs, "fuse_images", exhausted)
    ir, vis = grey_pair
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png"), "--method", "dwt")
    assert_one_line_error(code, err, "not enough memory")
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("option", [["--compile"], ["--tile", "64"], ["--precision", "bf16"], ["--weights", "w.safetensors"]])
def test_learned_method_options_do_not_apply_to_classical_methods(capsys, grey_pair, tmp_path, option):
    """The CLI takes each method's options from the method itself: one a method lacks is one line."""
    ir, vis = grey_pair
    code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png"),
                       "--method", "gff", *option)
    assert_one_line_error(code, err, f"{option[0]} does not apply to method 'gff'")
    assert not (tmp_path / "f.png").exists()


def test_recolour_flag_picks_the_chroma_rule(capsys, tmp_path):
    """Grey 0.9 infrared, pure red visible, ``maximum``: the fused Y (230/255) under red chroma leaves the
    RGB cube. By hand: ``clip`` keeps Cb, Cr and clips, G = B = Y + 0.0581 - 0.3571 ~ 0.603 (154);
    ``keep_luma`` (the default for this method) scales the chroma by 0.140, G = B = Y - 0.140 * 0.299
    ~ 0.860 (219), keeping Y."""
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    Image.fromarray(np.full((8, 8), 230, np.uint8)).save(ir)
    Image.fromarray(np.dstack([np.full((8, 8), 255, np.uint8), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)])).save(vis)
    fused = {}
    for rule in (None, "clip", "keep_luma"):
        out = tmp_path / f"{rule}.png"
        code, _, err = run(capsys, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(out), "--method", "maximum",
                           *(["--recolour", rule] if rule else []))
        assert code == 0, err
        fused[rule] = np.asarray(Image.open(out)).astype(int)
    assert np.all(fused["clip"] == [255, 154, 154])
    assert np.all(np.abs(fused["keep_luma"] - [255, 219, 219]) <= 1)
    assert np.array_equal(fused[None], fused["keep_luma"])
    with pytest.raises(SystemExit) as exit_:
        main(["fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "x.png"), "--recolour", "grey"])
    assert exit_.value.code == 2 and "invalid choice: 'grey'" in capsys.readouterr().err
