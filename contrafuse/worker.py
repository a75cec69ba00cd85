"""A background process that keeps learned models loaded between ``contrafuse fuse`` runs.

Starting Python, importing PyTorch and loading a network costs more than fusing one 640x480 pair
with it (about 2 s against 0.8 s on a 2-core CPU). So a single-pair ``fuse`` with a learned method
hands its command line to a worker process that has already paid that price, and prints what the
worker printed. The first such run starts the worker and waits for it, costing what a run without
a worker costs; later runs cost the fusion plus a few tens of milliseconds.

* Private to the user: a Unix socket in ``$CONTRAFUSE_HOME/run`` (a folder only the user can
  enter); requests are JSON (a command line, a working directory, the file creation mask and the
  ``CONTRAFUSE_*`` variables).
* The worker runs the very same command-line code (:func:`contrafuse.cli.main`), so results,
  messages and exit statuses are those of a run without it.
* One worker per installed code, Python and thread settings: after an upgrade or an edit of the
  package, the next run starts a fresh worker and the old one idles out.
* It exits after ``CONTRAFUSE_WORKER_IDLE`` seconds without a request (default 600);
  ``contrafuse worker stop`` stops it now, ``contrafuse worker status`` lists it, and
  ``CONTRAFUSE_WORKER=off`` fuses in the calling process as before.

Folder mode, the Python API and ``contrafuse serve`` keep their models in their own process and
never use a worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .errors import ContrafuseError
from .weights import home

DEFAULT_IDLE_SECONDS = 600
#: environment variables that change what a worker process is (threads, devices): part of its identity
PROCESS_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONPATH")
_SOCKET_PATH_LIMIT = 100  # sun_path holds 104-108 bytes depending on the system
_START_TIMEOUT = 60.0


def enabled() -> bool:
    """Whether single-pair runs go through a worker: ``CONTRAFUSE_WORKER`` is not ``off``, the
    system has Unix sockets, and this is not one process of a torchrun launch."""
    setting = os.environ.get("CONTRAFUSE_WORKER", "auto").strip().lower()
    if setting not in ("auto", "on", "off", "0", "1", "no", "yes", ""):
        raise ContrafuseError("CONTRAFUSE_WORKER", f"must be 'auto' or 'off', not {setting!r}")
    if setting in ("off", "0", "no"):
        return False
    return hasattr(socket, "AF_UNIX") and os.name == "posix" and int(os.environ.get("WORLD_SIZE", "1")) <= 1


def run_folder() -> Path:
    """Where the sockets live: ``$CONTRAFUSE_HOME/run``, created private to the user."""
    folder = home() / "run"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def identity() -> str:
    """Twelve hex digits naming this code, Python and process settings: a worker serves only
    calls that would run exactly as it does."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    digest.update(f"{sys.executable}\0{package}\0".encode())
    for name in PROCESS_VARIABLES:
        digest.update(f"{name}={os.environ.get(name, '')}\0".encode())
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".safetensors", ".json", ".txt") and "__pycache__" not in path.parts:
            stat = path.stat()
            digest.update(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:12]


def socket_path() -> Path:
    return run_folder() / f"worker-{identity()}.sock"


def _request(path: Path, message: dict, timeout: float | None = None) -> dict:
    """Send one JSON request and read the one JSON reply (ConnectionError/OSError when there is
    no worker or it died without answering)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        conn.sendall(json.dumps(message).encode() + b"\n")
        conn.shutdown(socket.SHUT_WR)
        data = b"".join(iter(lambda: conn.recv(1 << 16), b""))
    if not data:
        raise ConnectionError("the worker closed the connection without answering")
    return json.loads(data)


def _start(path: Path) -> subprocess.Popen:
    """Start a worker listening on ``path``, detached from this terminal; it logs beside the socket."""
    log = open(path.with_suffix(".log"), "ab")  # noqa: SIM115  (handed to the child)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "contrafuse.worker", str(path)], cwd="/", stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True, close_fds=True)
    finally:
        log.close()


def _wait_for_socket(path: Path, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def delegate(argv: list[str]) -> int | None:
    """Run ``contrafuse <argv>`` in a worker (starting one if none serves this code) and relay what
    it printed; ``None`` when no worker could be used, so the caller runs the command itself."""
    import fcntl

    path = socket_path()
    if len(str(path)) > _SOCKET_PATH_LIMIT:
        return None
    umask = os.umask(0o22)
    os.umask(umask)
    message = {"argv": argv, "cwd": os.getcwd(), "umask": umask,
               "env": {k: v for k, v in os.environ.items() if k.startswith("CONTRAFUSE_")}}
    started = False
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
        if path.exists():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(path))
            except OSError:  # a worker that died without removing its socket
                path.unlink(missing_ok=True)
        if not path.exists():
            if not _wait_for_socket(path, _start(path)):
                return None
            started = True
    try:
        reply = _request(path, message)
    except (OSError, ValueError):
        return None
    sys.stdout.write(reply["stdout"])
    sys.stdout.flush()
    sys.stderr.write(reply["stderr"])
    if started and reply["rc"] == 0 and sys.stderr.isatty():
        print(f"contrafuse: started a worker that keeps the model loaded for later runs (it exits after "
              f"{_idle_seconds():.0f} s idle; 'contrafuse worker stop'; CONTRAFUSE_WORKER=off to fuse in-process)",
              file=sys.stderr)
    return int(reply["rc"])


def workers() -> list[dict]:
    """Status of every worker of this user (any code version) that answers."""
    found = []
    for path in sorted(run_folder().glob("worker-*.sock")):
        try:
            found.append(_request(path, {"command": "status"}, timeout=5))
        except (OSError, ValueError):
            continue
    return found


def stop_all() -> int:
    """Ask every worker of this user to exit; how many did."""
    stopped = 0
    for path in sorted(run_folder().glob("worker-*.sock")):
        try:
            _request(path, {"command": "stop"}, timeout=5)
            stopped += 1
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    return stopped


def _idle_seconds() -> float:
    value = os.environ.get("CONTRAFUSE_WORKER_IDLE", str(DEFAULT_IDLE_SECONDS))
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ContrafuseError("CONTRAFUSE_WORKER_IDLE", f"must be a positive number of seconds, not {value!r}")
    return seconds


class Worker:
    """The serving side: answers requests one at a time on a listening Unix socket."""

    def __init__(self, path: Path, idle_seconds: float):
        from .methods.base import MethodCache

        self.path, self.idle_seconds = path, idle_seconds
        self.methods = MethodCache(size=2)  # a model per method and options, the last two used
        self.served, self.started = 0, time.time()
        self.base_env = dict(os.environ)

    def serve(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            listening = self.path.with_name(f".{os.getpid()}.sock")
            server.bind(str(listening))
            try:
                server.listen(16)
                os.replace(listening, self.path)  # the socket appears already listening
                server.settimeout(self.idle_seconds)
                while True:
                    try:
                        conn, _ = server.accept()
                    except TimeoutError:
                        return
                    with conn:
                        if not self._answer(conn):
                            return
            finally:
                listening.unlink(missing_ok=True)
                self.path.unlink(missing_ok=True)
                log = self.path.with_suffix(".log")
                if log.exists() and not log.stat().st_size:
                    log.unlink()

    def _answer(self, conn: socket.socket) -> bool:
        """Serve one request; False when it asks the worker to stop."""
        conn.settimeout(None)
        data = b"".join(iter(lambda: conn.recv(1 << 16), b""))
        try:
            request = json.loads(data)
        except ValueError:
            return True
        command = request.get("command", "run")
        if command == "status":
            reply = {"pid": os.getpid(), "socket": str(self.path), "served": self.served,
                     "uptime_s": round(time.time() - self.started, 1), "methods": self.methods.names()}
        elif command == "stop":
            reply = {"stopped": os.getpid()}
        else:
            reply = self.run(request["argv"], request["cwd"], request.get("env", {}), request.get("umask", 0o22))
            self.served += 1
        with contextlib.suppress(OSError):  # the caller may have gone (Ctrl-C): the output is written anyway
            conn.sendall(json.dumps(reply).encode())
        return command != "stop"

    def run(self, argv: list[str], cwd: str, env: dict, umask: int = 0o22) -> dict:
        """``contrafuse <argv>`` in ``cwd`` with the caller's ``CONTRAFUSE_*`` variables and file
        creation mask, output captured."""
        from .cli import main

        os.umask(umask)
        os.environ.clear()
        os.environ.update({k: v for k, v in self.base_env.items() if not k.startswith("CONTRAFUSE_")}, **env)
        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            os.chdir(cwd)
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    rc = main(argv, methods=self.methods)
                except SystemExit as exc:  # argparse
                    rc = exc.code if isinstance(exc.code, int) else 2
                except Exception:  # noqa: BLE001  (printed as Python would, without ending the worker)
                    traceback.print_exc()
                    rc = 1
        except OSError as exc:
            stderr.write(f"contrafuse: error: {cwd}: cannot enter the working directory ({exc.strerror})\n")
            rc = 2
        finally:
            os.chdir("/")
            os.environ.clear()
            os.environ.update(self.base_env)
        return {"rc": rc, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


if __name__ == "__main__":
    Worker(Path(sys.argv[1]), _idle_seconds()).serve()
