"""Single-pair ``contrafuse fuse`` runs through a background process that keeps learned models
loaded between runs (this module: the calling side; the process itself: :mod:`contrafuse.worker_process`).

Starting Python, importing PyTorch and loading a network costs more than fusing one 640x480 pair
with it (about 2 s against 0.8 s on a 2-core CPU). So a single-pair ``fuse`` with a learned method
hands its command line to a worker process that has already paid that price, and prints what the
worker printed. The first such run starts the worker and waits for it, costing what a run without
a worker costs; later runs cost the fusion plus a few tens of milliseconds.

* Private to the user: a Unix socket in ``$CONTRAFUSE_HOME/run`` (a folder only the user can
  enter; the worker also checks the caller's user id). Requests are JSON: a fusion job
  (:class:`contrafuse.jobs.FuseJob`, built and checked by the command line), a working
  directory, the file creation mask and the ``CONTRAFUSE_*`` variables.
* The worker runs the job with the same code as the command line
  (:func:`contrafuse.cli.run_fuse_job`), so results, messages and exit statuses are those of a run
  without it. A caller that hangs up (Ctrl-C) interrupts its run as Ctrl-C would.
* One worker per host, user, installed code, Python and thread settings: after an edit of the
  package the next run starts a fresh worker and stops the outdated one.
* Inputs above :data:`LARGEST_SERVED_PIXELS` are fused in the calling process.
* It exits after ``CONTRAFUSE_WORKER_IDLE`` seconds without a request (default 600);
  ``contrafuse worker stop`` stops it now, ``contrafuse worker status`` lists it, and
  ``CONTRAFUSE_WORKER=off`` fuses in the calling process as before.

Folder mode, the Python API and ``contrafuse serve`` keep their models in their own process and
never use a worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import distributed
from .errors import ContrafuseError, positive_setting
from .fingerprint import fingerprint
from .weights import home

DEFAULT_IDLE_SECONDS = 600
#: environment variables that change what a worker process is (threads, devices, libraries): part of its identity
PROCESS_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "LD_PRELOAD",
                     "LD_LIBRARY_PATH", "ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")
#: larger inputs are fused in the calling process: their fusion takes many times the start-up, and a
#: kept process would hold a large image's memory while it idles
LARGEST_SERVED_PIXELS = 4_000_000
_SOCKET_PATH_LIMIT = 100  # sun_path holds 104-108 bytes depending on the system
_START_TIMEOUT = 60.0
_LOG_LIMIT = 1 << 20


def enabled() -> bool:
    """Whether single-pair runs go through a worker: ``CONTRAFUSE_WORKER`` is not ``off``, the
    system has Unix sockets, and this is not one process of a torchrun launch."""
    setting = os.environ.get("CONTRAFUSE_WORKER", "auto").strip().lower()
    if setting not in ("auto", "on", "off", "0", "1", "no", "yes", ""):
        raise ContrafuseError("CONTRAFUSE_WORKER", f"must be 'auto' or 'off', not {setting!r}")
    if setting in ("off", "0", "no"):
        return False
    idle_seconds()  # a bad value is an error here, not in the worker
    return hasattr(socket, "AF_UNIX") and hasattr(socket, "SO_PEERCRED") and not distributed.launched()


def run_folder() -> Path:
    """Where the sockets live: ``$CONTRAFUSE_HOME/run``, created private to the user (a one-line
    error when it cannot be)."""
    folder = home().resolve() / "run"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise ContrafuseError(folder, f"cannot make the workers' folder ({exc.strerror or exc}); "
                              "set CONTRAFUSE_HOME to a writable folder") from None
    return folder


def identity() -> str:
    """Twelve hex digits naming this host, user, code, Python and process settings: a worker
    serves only calls that would run exactly as it does."""
    package = Path(__file__).resolve().parent
    parts = [socket.gethostname(), os.geteuid(), os.getegid(), sorted(os.getgroups()), os.path.realpath(sys.executable),
             package, sorted(os.sched_getaffinity(0)), *(f"{name}={os.environ.get(name, '')}" for name in PROCESS_VARIABLES)]
    for path in sorted(package.rglob("*")):  # the code by size and modification time: cheap at every start
        if path.is_file() and "__pycache__" not in path.parts:
            stat = path.stat()
            parts.append(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}")
    return fingerprint(map(str, parts), length=12)


def socket_path() -> Path:
    return run_folder() / f"worker-{identity()}.sock"


def _request(path: Path, message: dict, timeout: float | None = None) -> dict:
    """Send one JSON request and read the one JSON reply (OSError when there is no worker or it
    closed the connection without answering, TimeoutError after ``timeout`` seconds)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        conn.sendall(json.dumps(message).encode() + b"\n")
        conn.shutdown(socket.SHUT_WR)
        data = b"".join(iter(lambda: conn.recv(1 << 16), b""))
    if not data:
        raise ConnectionResetError("the worker closed the connection without answering")
    return json.loads(data)


def _start(path: Path) -> subprocess.Popen:
    """Start a worker listening on ``path``, detached from this terminal, running this very
    package (its folder first on the path); it logs beside the socket."""
    log_path = path.with_suffix(".log")
    if log_path.exists() and log_path.stat().st_size > _LOG_LIMIT:
        log_path.unlink()
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "contrafuse.worker_process", str(path), identity()],
                                cwd="/", env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)


def _wait_for_socket(path: Path, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    process.kill()
    return False


def _connect_or_start(path: Path) -> bool | None:
    """Make sure a worker listens on ``path``: True if this call started it, False if one was
    already there, None if none could be started."""
    import fcntl

    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
        if path.exists():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(5)
                    probe.connect(str(path))
                return False
            except (ConnectionRefusedError, FileNotFoundError):  # a worker that died without removing its socket
                path.unlink(missing_ok=True)
        return True if _wait_for_socket(path, _start(path)) else None


def worth_serving(*images: Path) -> bool:
    """Whether start-up matters for fusing these files: none has more than
    :data:`LARGEST_SERVED_PIXELS` (read from the file header; an unreadable file is served, and
    the worker reports it)."""
    from PIL import Image

    def pixels(path: Path) -> int:
        try:
            with Image.open(path) as image:
                return image.size[0] * image.size[1]
        except Exception:  # noqa: BLE001  (any unreadable file: the run itself reports it)
            return 0

    return all(pixels(path) <= LARGEST_SERVED_PIXELS for path in images)


def delegate(job) -> int | None:
    """Run a :class:`~contrafuse.jobs.FuseJob` in a worker (starting one if none serves this code)
    and relay what it printed; ``None`` when no worker could be used, so the caller runs it itself."""
    try:
        path = socket_path()
        if len(os.fsencode(path)) > _SOCKET_PATH_LIMIT:
            return None
        umask = os.umask(0o22)
        os.umask(umask)
        message = {"job": job.to_message(), "cwd": os.getcwd(), "umask": umask,
                   "env": {k: v for k, v in os.environ.items() if k.startswith("CONTRAFUSE_")}}
        started = _connect_or_start(path)
        if started is None:
            return None
        if started:
            _stop_outdated(path)
    except (OSError, ContrafuseError):  # no private folder, no current folder, ...: fuse in this process
        return None
    try:
        reply = _request(path, message)
    except ConnectionRefusedError:  # it exited (idle) just now
        return None
    except (OSError, ValueError):
        print(f"contrafuse: the worker stopped without answering (log: {path.with_suffix('.log')}); "
              "fusing in this process", file=sys.stderr)
        return None
    sys.stderr.write(reply["stderr"])  # progress and warnings came before the result line
    sys.stderr.flush()
    sys.stdout.write(reply["stdout"])
    sys.stdout.flush()
    if started and reply["rc"] == 0 and sys.stderr.isatty():
        print(f"contrafuse: started a worker that keeps the model loaded for later runs (it exits after "
              f"{idle_seconds():.0f} s idle; 'contrafuse worker stop'; CONTRAFUSE_WORKER=off to fuse in-process)",
              file=sys.stderr)
    return int(reply["rc"])


def _statuses(timeout: float) -> list[dict]:
    """Every worker socket of this user with the worker's status, or ``busy`` when it did not
    answer within ``timeout`` (it serves one request at a time)."""
    found = []
    for path in sorted(run_folder().glob("worker-*.sock")):
        try:
            found.append(_request(path, {"command": "status"}, timeout=timeout))
        except TimeoutError:
            found.append({"socket": str(path), "busy": True})
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
        except (OSError, ValueError):
            continue
    return found


#: how long ``worker status`` waits for a worker's answer: an idle one answers at once, a busy one
#: (it serves one request at a time) is listed as busy
STATUS_TIMEOUT = 1.0


def workers() -> list[dict]:
    """Status of every worker of this user (any code version); a busy one as ``{"socket", "busy"}``."""
    return _statuses(timeout=STATUS_TIMEOUT)


def _stop_outdated(current: Path) -> None:
    """Stop idle workers of this same package folder whose code has changed since they started."""
    package = str(Path(__file__).resolve().parent)
    for status in _statuses(timeout=0.5):
        if status.get("package") == package and status.get("socket") != str(current) and not status.get("busy"):
            with contextlib.suppress(OSError, ValueError):
                _request(Path(status["socket"]), {"command": "stop"}, timeout=5)


def stop_all() -> int:
    """Ask every worker of this user to exit (a busy one after its current run); how many were asked."""
    asked = 0
    for path in sorted(run_folder().glob("worker-*.sock")):
        try:
            _request(path, {"command": "stop"}, timeout=5)
        except TimeoutError:  # busy: the request is queued and served after the current run
            pass
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
            continue
        except (OSError, ValueError):
            continue
        asked += 1
    return asked


def idle_seconds() -> float:
    return positive_setting("CONTRAFUSE_WORKER_IDLE", DEFAULT_IDLE_SECONDS, "number of seconds")
