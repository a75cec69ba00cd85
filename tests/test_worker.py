"""The background worker behind single-pair ``contrafuse fuse`` runs with learned methods."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset
from PIL import Image

from contrafuse import worker
from contrafuse.cli import main
from contrafuse.methods import MethodCache


@pytest.fixture
def worker_home(monkeypatch):
    """A private CONTRAFUSE_HOME with the worker on; any worker started is stopped afterwards."""
    home = Path(tempfile.mkdtemp(prefix="cfw-"))  # short: a socket path holds about 100 bytes
    monkeypatch.setenv("CONTRAFUSE_HOME", str(home))
    monkeypatch.setenv("CONTRAFUSE_WORKER", "auto")
    monkeypatch.setenv("CONTRAFUSE_WORKER_IDLE", "120")
    yield home
    worker.stop_all()
    shutil.rmtree(home, ignore_errors=True)


def test_worker_serves_later_runs_with_the_in_process_result(worker_home, tmp_path, capsys, monkeypatch):
    pair = dataset("RoadScene")
    ir, vis = str(pair / "ir" / "FLIR_00006.jpg"), str(pair / "vis" / "FLIR_00006.jpg")
    for name, umask in (("a.png", 0o022), ("b.png", 0o027)):
        previous = os.umask(umask)
        try:
            assert main(["fuse", "--ir", ir, "--vis", vis, "-o", str(tmp_path / name), "--method", "clfnet"]) == 0
        finally:
            os.umask(previous)
    assert (tmp_path / "b.png").stat().st_mode & 0o777 == 0o640  # written with the caller's file creation mask
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / 'a.png'}", f"wrote {tmp_path / 'b.png'}"]
    [status] = worker.workers()
    assert status["served"] == 2 and status["methods"] == ["clfnet"]

    # a problem found in the worker is the same one line and exit status as without it
    assert main(["fuse", "--ir", ir, "--vis", vis, "-o", str(tmp_path / "a.png"), "--method", "clfnet"]) == 2
    assert capsys.readouterr().err == f"contrafuse: error: {tmp_path / 'a.png'}: output exists (use --overwrite to replace it)\n"

    monkeypatch.setenv("CONTRAFUSE_WORKER", "off")
    assert main(["fuse", "--ir", ir, "--vis", vis, "-o", str(tmp_path / "c.png"), "--method", "clfnet"]) == 0
    assert worker.workers()[0]["served"] == 3  # the refused run counts; the run with the worker off does not
    images = [np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png", "c.png")]
    assert np.array_equal(images[0], images[2]) and np.array_equal(images[1], images[2])

    assert worker.stop_all() == 1
    assert not list((worker_home / "run").glob("*.sock"))


def test_idle_worker_exits_and_removes_its_socket(worker_home, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRAFUSE_WORKER_IDLE", "1")
    pair = dataset("RoadScene")
    assert main(["fuse", "--ir", str(pair / "ir" / "FLIR_00006.jpg"), "--vis", str(pair / "vis" / "FLIR_00006.jpg"),
                 "-o", str(tmp_path / "a.png"), "--method", "clfnet"]) == 0
    deadline = time.monotonic() + 20
    while list((worker_home / "run").glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list((worker_home / "run").glob("*.sock"))
    assert main(["worker", "status"]) == 0


def test_worker_identity_follows_thread_settings(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = worker.identity()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert worker.identity() != one


def test_bad_worker_setting_is_a_one_line_error(monkeypatch, grey_pair, tmp_path, capsys):
    monkeypatch.setenv("CONTRAFUSE_WORKER", "sometimes")
    ir, vis = grey_pair
    assert main(["fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png"), "--method", "clfnet"]) == 2
    assert capsys.readouterr().err == "contrafuse: error: CONTRAFUSE_WORKER: must be 'auto' or 'off', not 'sometimes'\n"


def test_method_cache_builds_once_and_rereads_a_replaced_weights_file(tmp_path):
    cache = MethodCache(size=1)
    assert cache.get("gff") is cache.get("gff")
    first = cache.get("average")
    assert cache.names() == ["average"]  # gff evicted
    assert cache.get("average") is first
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"1")
    key = cache._key("x", {"weights": str(weights)})
    weights.write_bytes(b"22")
    assert cache._key("x", {"weights": str(weights)}) != key
