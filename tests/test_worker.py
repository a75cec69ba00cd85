"""The background worker behind single-pair ``contrafuse fuse`` runs with learned methods."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset
from PIL import Image

from contrafuse import worker, worker_process
from contrafuse.cli import main
from contrafuse.jobs import FuseJob
from contrafuse.methods import MethodCache


@pytest.fixture
def worker_home(monkeypatch):
    """A private CONTRAFUSE_HOME with the worker on; any worker started is killed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="cfw-"))  # short: a socket path holds about 100 bytes
    monkeypatch.setenv("CONTRAFUSE_HOME", str(home))
    monkeypatch.setenv("CONTRAFUSE_WORKER", "auto")
    monkeypatch.setenv("CONTRAFUSE_WORKER_IDLE", "120")
    monkeypatch.setattr(worker, "STATUS_TIMEOUT", 10.0)  # a loaded machine may take a second to answer
    yield home
    for status in worker.workers():
        if "pid" in status:
            os.kill(status["pid"], signal.SIGTERM)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def pair():
    road = dataset("RoadScene")
    return str(road / "ir" / "FLIR_00006.jpg"), str(road / "vis" / "FLIR_00006.jpg")


def fuse(ir, vis, out) -> int:
    return main(["fuse", "--ir", ir, "--vis", vis, "-o", out, "--method", "clfnet"])


def test_worker_serves_later_runs_as_the_calling_process_would(worker_home, pair, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths resolve in the caller's folder
    for name, umask in (("a.png", 0o022), ("b.png", 0o027)):
        previous = os.umask(umask)
        try:
            assert fuse(*pair, name) == 0
        finally:
            os.umask(previous)
    assert capsys.readouterr().out.splitlines() == ["wrote a.png", "wrote b.png"]
    assert (tmp_path / "b.png").stat().st_mode & 0o777 == 0o640  # the caller's file creation mask
    [status] = worker.workers()
    assert status["served"] == 2 and status["methods"] == ["clfnet"]

    # an existing output is refused before anything is handed to the worker ...
    assert fuse(*pair, "a.png") == 2
    assert capsys.readouterr().err == "contrafuse: error: a.png: output exists (use --overwrite to replace it)\n"
    assert worker.workers()[0]["served"] == 2
    # ... and problems found in the worker are the same one line and exit status as without it
    monkeypatch.setenv("CONTRAFUSE_MAX_PIXELS", "1000")  # the caller's CONTRAFUSE_* variables apply
    assert fuse(*pair, "d.png") == 2
    assert "CONTRAFUSE_MAX_PIXELS" in capsys.readouterr().err
    monkeypatch.delenv("CONTRAFUSE_MAX_PIXELS")

    monkeypatch.setenv("CONTRAFUSE_WORKER", "off")
    assert fuse(*pair, "c.png") == 0
    assert worker.workers()[0]["served"] == 3  # the run with the worker off is not one of them
    images = [np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png", "c.png")]
    assert np.array_equal(images[0], images[2]) and np.array_equal(images[1], images[2])

    assert worker.stop_all() == 1
    assert not list((worker_home / "run").glob("*.sock"))
    assert worker.workers() == []


def test_idle_worker_exits_and_a_stale_socket_is_replaced(worker_home, pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONTRAFUSE_WORKER_IDLE", "10")
    stale = worker.socket_path()
    with socket.socket(socket.AF_UNIX) as dead:  # a socket file nobody listens on (a killed worker's)
        dead.bind(str(stale))
    assert fuse(*pair, str(tmp_path / "a.png")) == 0
    [status] = worker.workers()
    assert status["served"] == 1
    deadline = time.monotonic() + 60
    while stale.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stale.exists()
    capsys.readouterr()
    assert main(["worker", "status"]) == 0
    assert capsys.readouterr().out == "no worker running\n"


def test_worker_runs_fusion_jobs_only(worker_home, pair, tmp_path):
    """The worker receives a job the command line built, never a command line to parse."""
    assert fuse(*pair, str(tmp_path / "a.png")) == 0
    refused = {"rc": 2, "stdout": "", "stderr": "contrafuse: error: the worker only runs fusion jobs\n"}
    for request in ({"argv": ["worker", "stop"], "cwd": str(tmp_path)},
                    {"job": {"ir": pair[0], "vis": pair[1], "output": "b.png"}, "cwd": str(tmp_path)},  # no method
                    {"job": {**FuseJob(*pair, "b.png", "clfnet").to_message(), "shell": "rm"}, "cwd": str(tmp_path)}):
        assert worker._request(worker.socket_path(), request) == refused
    assert worker.workers()[0]["served"] == 1
    job = FuseJob(pair[0], pair[1], "c.png", "clfnet", resize="ir", high_bit_rule="full", overwrite=True)
    assert FuseJob.from_message(json.loads(json.dumps(job.to_message()))) == job
    reply = worker._request(worker.socket_path(), {"job": job.to_message(), "cwd": str(tmp_path)})
    assert reply["rc"] == 0, reply
    assert reply["stdout"] == "wrote c.png\n" and (tmp_path / "c.png").is_file()


@pytest.mark.parametrize("sigint", [signal.default_int_handler, signal.SIG_IGN],
                         ids=["python-handler", "ignored-as-in-a-background-job"])
def test_a_caller_hanging_up_interrupts_its_run_like_ctrl_c(sigint):
    previous = signal.signal(signal.SIGINT, sigint)
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX)
        with pytest.raises(KeyboardInterrupt), worker_process._HangUpWatch(ours):
            theirs.close()
            time.sleep(5)
        ours.close()
        assert signal.getsignal(signal.SIGINT) == sigint  # the setting is restored
    finally:
        signal.signal(signal.SIGINT, previous)


def test_worker_identity_follows_thread_settings(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = worker.identity()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert worker.identity() != one


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("CONTRAFUSE_WORKER", "sometimes", "CONTRAFUSE_WORKER: must be 'auto' or 'off', not 'sometimes'"),
    ("CONTRAFUSE_WORKER_IDLE", "soon", "CONTRAFUSE_WORKER_IDLE: must be a positive number of seconds, not 'soon'"),
])
def test_bad_worker_settings_are_one_line_errors(monkeypatch, grey_pair, tmp_path, capsys, variable, value, message):
    monkeypatch.setenv("CONTRAFUSE_WORKER", "auto")
    monkeypatch.setenv(variable, value)
    assert fuse(str(grey_pair[0]), str(grey_pair[1]), str(tmp_path / "f.png")) == 2
    assert capsys.readouterr().err == f"contrafuse: error: {message}\n"


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


def test_large_inputs_are_fused_in_the_calling_process(tmp_path):
    small, large, broken = tmp_path / "small.png", tmp_path / "large.png", tmp_path / "broken.png"
    Image.new("L", (640, 480)).save(small)
    Image.new("L", (2001, 2000)).save(large)  # 4,002,000 pixels: just above the limit
    broken.write_bytes(b"not an image")
    assert worker.LARGEST_SERVED_PIXELS == 4_000_000
    assert worker.worth_serving(small, small)
    assert not worker.worth_serving(small, large)
    assert worker.worth_serving(small, broken)  # the run reports it, as it would in-process
