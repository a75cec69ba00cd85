"""Video and frame sequences (contrafuse.video, `contrafuse fuse --ir-video`): generated frames fused
end to end, pairing, errors, the temporal-stability measure and the stabilised mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import peers, save
from PIL import Image

from contrafuse.cli import main
from contrafuse.io import to_uint
from contrafuse.video import SmoothedBatchNorm, TemporalChange, TemporalStability, fuse_video

av = pytest.importorskip("av")

WIDTH, HEIGHT = 64, 48


def encode(path, frames, fps=10, codec="libx264"):
    """Write 8-bit frames (grey or RGB) as a video with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            rgb = frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24")[..., 0].astype(np.float64) for f in container.decode(video=0)]


def flat(value, height=HEIGHT, width=WIDTH):
    return np.full((height, width), value, np.uint8)


def smooth_frames(count, phase):
    """Smooth moving gradients (lossy codecs keep them to a few grey levels)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return [(127 + 100 * np.sin((x + 3 * t) / 9 + phase) * np.cos(y / 11)).astype(np.uint8) for t in range(count)]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_video_pair_fuses_end_to_end(capsys, tmp_path):
    ir = encode(tmp_path / "ir.mp4", smooth_frames(8, 0.0))
    vis = encode(tmp_path / "vis.mp4", smooth_frames(8, 1.5))
    code, out, err = run(capsys, "fuse", "--ir-video", ir, "--vis-video", vis, "-o", tmp_path / "out.mp4",
                         "--method", "average")
    assert code == 0, err
    assert "8 frames of 64x48 at 10 fps" in out
    fused, a, b = decode(tmp_path / "out.mp4"), decode(ir), decode(vis)
    assert len(fused) == 8 and fused[0].shape == (HEIGHT, WIDTH)
    for f, x, y in zip(fused, a, b):  # the mean of the decoded sources, to the codec's loss
        assert np.abs(f - (x + y) / 2).mean() < 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir.mp4", "out.mp4", "vis.mp4"]  # no temporary left


def test_frame_folders_in_natural_order(capsys, tmp_path):
    for k in range(1, 11):  # f1 .. f10: f10 sorts before f2 by plain name
        save(tmp_path / "ir" / f"f{k}.png", flat(20 * k))
        save(tmp_path / "vis" / f"f{k}.png", flat(0))
    code, out, err = run(capsys, "fuse", "--ir-video", tmp_path / "ir", "--vis-video", tmp_path / "vis",
                         "-o", tmp_path / "out", "--method", "average")
    assert code == 0, err
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [f"{i:06d}.png" for i in range(10)]
    assert [int(np.asarray(Image.open(p))[0, 0]) for p in written] == [10 * k for k in range(1, 11)]


def test_colour_frames_fused_as_still_images(tmp_path):
    import contrafuse

    rng = np.random.default_rng(1)
    for k in range(3):
        save(tmp_path / "ir" / f"{k}.png", (rng.random((HEIGHT, WIDTH)) * 255).astype(np.uint8))
        save(tmp_path / "vis" / f"{k}.png", (rng.random((HEIGHT, WIDTH, 3)) * 255).astype(np.uint8))
    result = fuse_video(tmp_path / "ir", tmp_path / "vis", tmp_path / "out", "gff")
    assert result.frames == 3
    for k in range(3):
        frame = np.asarray(Image.open(tmp_path / "out" / f"{k:06d}.png"))
        still = contrafuse.fuse(tmp_path / "ir" / f"{k}.png", tmp_path / "vis" / f"{k}.png", "gff")
        assert frame.shape == (HEIGHT, WIDTH, 3)
        assert np.array_equal(frame, to_uint(still))  # written as still images are


def test_timestamp_alignment_takes_the_nearest_frame(capsys, tmp_path):
    ir = encode(tmp_path / "ir.mp4", [flat(0)] * 10, fps=10)  # frames at 0, 0.1, ..., 0.9 s
    vis = encode(tmp_path / "vis.mp4", [flat(40 + 50 * j) for j in range(4)], fps=4)  # 0, 0.25, 0.5, 0.75 s
    code, out, err = run(capsys, "fuse", "--ir-video", ir, "--vis-video", vis, "-o", tmp_path / "out",
                         "--method", "maximum", "--align", "timestamp")
    assert code == 0, err
    levels = [np.asarray(Image.open(p)).mean() for p in sorted((tmp_path / "out").iterdir())]
    chosen = [int(round((v - 40) / 50)) for v in levels]
    # 0.9 s lies past the last visible frame (0.75 s) by more than half its period: left out
    assert chosen == [0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert "vis.mp4 ended at 0.750 s: the frames of" in out and "after it (1 frame) are left out" in out


def test_index_alignment_stops_at_the_shorter(capsys, tmp_path):
    for k in range(5):
        save(tmp_path / "ir" / f"{k}.png", flat(10 * k))
    for k in range(3):
        save(tmp_path / "vis" / f"{k}.png", flat(0))
    code, out, err = run(capsys, "fuse", "--ir-video", tmp_path / "ir", "--vis-video", tmp_path / "vis",
                         "-o", tmp_path / "out", "--method", "average")
    assert code == 0, err
    assert len(list((tmp_path / "out").iterdir())) == 3
    assert "ended after 3 frames: the rest of" in out and "(2 frames) is left out" in out


@pytest.fixture
def videos(tmp_path):
    return encode(tmp_path / "ir.mp4", smooth_frames(3, 0)), encode(tmp_path / "vis.mp4", smooth_frames(3, 1))


@pytest.mark.parametrize("case, fragment", [
    ("missing", "not found"), ("unreadable", "not a readable video"), ("exists", "output exists"),
    ("input", "one of the inputs"), ("quality", "quality for libx264"), ("suffix", "unsupported output type"),
    ("size", "differs from"), ("stabilise", "stabilising smooths per-frame BatchNorm"),
    ("lossless", "ffv1 is lossless"), ("fps", "frame rate must be a positive number"),
    ("codec-only", "missing --ir-video"), ("bits", "videos are written with 8 bits"),
    ("container", "cannot write ffv1 video of 64x48 at 10 fps in .mov")])
def test_bad_input_is_one_line_before_any_work(capsys, tmp_path, videos, case, fragment):
    ir, vis = videos
    out = tmp_path / "out.mp4"
    argv = {"missing": ["--ir-video", tmp_path / "nope.mp4", "--vis-video", vis, "-o", out],
            "unreadable": ["--ir-video", tmp_path / "text.mp4", "--vis-video", vis, "-o", out],
            "exists": ["--ir-video", ir, "--vis-video", vis, "-o", tmp_path / "taken.mp4"],
            "input": ["--ir-video", ir, "--vis-video", vis, "-o", vis, "--overwrite"],
            "quality": ["--ir-video", ir, "--vis-video", vis, "-o", out, "--quality", "52"],
            "suffix": ["--ir-video", ir, "--vis-video", vis, "-o", tmp_path / "out.gif"],
            "size": ["--ir-video", ir, "--vis-video", tmp_path / "small", "-o", out],
            "stabilise": ["--ir-video", ir, "--vis-video", vis, "-o", out, "--method", "average", "--stabilise"],
            "lossless": ["--ir-video", ir, "--vis-video", vis, "-o", out, "--codec", "ffv1", "--quality", "3"],
            "fps": ["--ir-video", ir, "--vis-video", vis, "-o", out, "--fps", "0"],
            "codec-only": ["--codec", "mpeg4"],
            "bits": ["--ir-video", ir, "--vis-video", vis, "-o", out, "--bits", "16"],
            "container": ["--ir-video", ir, "--vis-video", vis, "-o", tmp_path / "out.mov", "--codec", "ffv1"]}[case]
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "taken.mp4").write_bytes(b"keep")
    save(tmp_path / "small" / "0.png", flat(0, 24, 32))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, _, err = run(capsys, "fuse", *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("contrafuse: error:") and fragment in lines[0], err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written


def test_temporal_change_by_hand():
    still = TemporalChange()
    for _ in range(4):
        still.add(np.full((4, 4), 0.3))
    assert still.value == 0 and still.level == 0
    alternating = TemporalChange()
    for value in (0.2, 0.5, 0.2):
        alternating.add(np.full((4, 4), value))
    assert alternating.value == pytest.approx(0.3) and alternating.level == pytest.approx(0.3)
    moving = TemporalChange()  # a bright half moves from left to right: every pixel changes, the mean does not
    left = np.zeros((2, 4))
    left[:, :2] = 1
    moving.add(left)
    moving.add(left[:, ::-1])
    assert moving.value == 1 and moving.level == 0


def test_stability_ratio_by_hand():
    meter = TemporalStability()
    for t in range(5):  # the infrared blinks 0/1, the visible is constant, their average blinks 0.25/0.75
        ir, vis = np.full((3, 3), float(t % 2)), np.full((3, 3), 0.5)
        meter.add(ir, vis, (ir + vis) / 2)
    result = meter.result()
    assert result["fused"] == pytest.approx(0.5) and result["ratio"] == pytest.approx(1.0)
    constant = TemporalStability()
    for _ in range(3):
        constant.add(np.zeros((2, 2)), np.ones((2, 2)), np.full((2, 2), 0.5))
    assert constant.result()["fused"] == 0 and math.isnan(constant.result()["ratio"])


EPS = 1e-5  # BatchNorm's default


def tiny_batchnorm_model():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(1, affine=False, track_running_stats=False)).eval()
    return torch, model


def test_smoothed_statistics_by_hand():
    torch, model = tiny_batchnorm_model()
    frames = [np.array([0, 0, 0, 4.0]), np.array([0, 0, 0, 8.0])]  # means 1 and 2, variances 3 and 12
    smoother = SmoothedBatchNorm(model, 0.5)
    try:
        outputs = [model(torch.tensor(f, dtype=torch.float32).view(1, 1, 2, 2)).flatten().numpy() for f in frames]
    finally:
        smoother.close()
    np.testing.assert_allclose(outputs[0], (frames[0] - 1) / np.sqrt(3 + EPS), rtol=1e-6)  # the first frame: its own
    np.testing.assert_allclose(outputs[1], (frames[1] - 1.5) / np.sqrt(7.5 + EPS), rtol=1e-6)  # means 1, 2 -> 1.5 ...
    plain = model(torch.tensor(frames[1], dtype=torch.float32).view(1, 1, 2, 2)).flatten().numpy()
    np.testing.assert_allclose(plain, (frames[1] - 2) / np.sqrt(12 + EPS), rtol=1e-6)  # hooks removed: per-frame again


def test_smoothing_reduces_background_flicker():
    torch, model = tiny_batchnorm_model()
    frames = []
    for t in range(12):  # a dark background with a corner patch that blinks on and off
        frame = np.zeros((8, 8), np.float32)
        frame[:2, :2] = 10.0 * (t % 2)
        frames.append(frame)

    def background_change(strength):
        smoother = SmoothedBatchNorm(model, strength)
        change = TemporalChange()
        try:
            for frame in frames:
                change.add(model(torch.from_numpy(frame).view(1, 1, 8, 8))[0, 0, 4:, 4:].numpy())
        finally:
            smoother.close()
        return change.value

    assert background_change(0.0) > 0.2
    assert background_change(0.9) < background_change(0.0) / 3


def test_stabilised_tardal_calms_the_background_of_a_blinking_target(tmp_path):
    peers("weights", "tardal")
    from contrafuse.methods import create_method

    rng = np.random.default_rng(2)
    scene = (rng.random((HEIGHT, WIDTH)) * 120).astype(np.uint8)
    for t in range(4):
        ir = scene.copy()
        ir[4:20, 4:20] = 255 if t % 2 else ir[4:20, 4:20]  # a hot target that comes and goes
        save(tmp_path / "ir" / f"{t}.png", ir)
        save(tmp_path / "vis" / f"{t}.png", scene)
    method = create_method("tardal", precision="fp32")  # TarDAL's official protocol: per-image BatchNorm
    plain = fuse_video(tmp_path / "ir", tmp_path / "vis", tmp_path / "plain", method)
    calm = fuse_video(tmp_path / "ir", tmp_path / "vis", tmp_path / "calm", method, stabilise=0.9)

    def background(folder):
        change = TemporalChange()
        for t in range(4):
            change.add(np.asarray(Image.open(folder / f"{t:06d}.png"), np.float32)[24:, 24:] / 255)
        return change.value

    assert calm.frames == plain.frames == 4
    first = [np.asarray(Image.open(f / "000000.png")).astype(int) for f in (tmp_path / "plain", tmp_path / "calm")]
    assert np.abs(first[0] - first[1]).max() <= 1  # the first frame: its own statistics either way
    assert background(tmp_path / "calm") < background(tmp_path / "plain") / 2
