"""A background process that keeps learned models loaded between ``contrafuse fuse`` runs.

Starting Python, importing PyTorch and loading a network costs more than fusing one 640x480 pair
with it (about 2 s against 0.8 s on a 2-core CPU). So a single-pair ``fuse`` with a learned method
hands its command line to a worker process that has already paid that price, and prints what the
worker printed. The first such run starts the worker and waits for it, costing what a run without
a worker costs; later runs cost the fusion plus a few tens of milliseconds.

* Private to the user: a Unix socket in ``$CONTRAFUSE_HOME/run`` (a folder only the user can
  enter; the worker also checks the caller's user id). Requests are JSON: a command line, a
  working directory, the file creation mask and the ``CONTRAFUSE_*`` variables. Only single-pair
  ``fuse`` command lines are run.
* The worker runs the very same command-line code (:func:`contrafuse.cli.main`), so results,
  messages and exit statuses are those of a run without it. A caller that hangs up (Ctrl-C)
  interrupts its run as Ctrl-C would.
* One worker per host, user, installed code, Python and thread settings: after an edit of the
  package the next run starts a fresh worker and stops the outdated one.
* It exits after ``CONTRAFUSE_WORKER_IDLE`` seconds without a request (default 600);
  ``contrafuse worker stop`` stops it now, ``contrafuse worker status`` lists it, and
  ``CONTRAFUSE_WORKER=off`` fuses in the calling process as before.

Folder mode, the Python API and ``contrafuse serve`` keep their models in their own process and
never use a worker.
"""

from __future__ import annotations

import _thread
import contextlib
import hashlib
import io
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from .errors import ContrafuseError
from .weights import home

DEFAULT_IDLE_SECONDS = 600
#: environment variables that change what a worker process is (threads, devices, libraries): part of its identity
PROCESS_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "LD_PRELOAD",
                     "LD_LIBRARY_PATH", "ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")
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
    _idle_seconds()  # a bad value is an error here, not in the worker
    return hasattr(socket, "AF_UNIX") and hasattr(socket, "SO_PEERCRED") and int(os.environ.get("WORLD_SIZE", "1")) <= 1


def run_folder() -> Path:
    """Where the sockets live: ``$CONTRAFUSE_HOME/run``, created private to the user."""
    folder = home().resolve() / "run"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def identity() -> str:
    """Twelve hex digits naming this host, user, code, Python and process settings: a worker
    serves only calls that would run exactly as it does."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    digest.update(f"{socket.gethostname()}\0{os.geteuid()}\0{os.getegid()}\0{sorted(os.getgroups())}\0".encode())
    digest.update(f"{sys.executable}\0{package}\0{sorted(os.sched_getaffinity(0))}\0".encode())
    for name in PROCESS_VARIABLES:
        digest.update(f"{name}={os.environ.get(name, '')}\0".encode())
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            stat = path.stat()
            digest.update(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:12]


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
        return subprocess.Popen([sys.executable, "-m", "contrafuse.worker", str(path), identity()],
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


def delegate(argv: list[str]) -> int | None:
    """Run ``contrafuse <argv>`` in a worker (starting one if none serves this code) and relay what
    it printed; ``None`` when no worker could be used, so the caller runs the command itself."""
    try:
        path = socket_path()
        if len(os.fsencode(path)) > _SOCKET_PATH_LIMIT:
            return None
        umask = os.umask(0o22)
        os.umask(umask)
        message = {"argv": argv, "cwd": os.getcwd(), "umask": umask,
                   "env": {k: v for k, v in os.environ.items() if k.startswith("CONTRAFUSE_")}}
        started = _connect_or_start(path)
        if started is None:
            return None
        if started:
            _stop_outdated(path)
    except OSError:  # no private folder, no current folder, ...: fuse in this process
        return None
    try:
        reply = _request(path, message)
    except ConnectionRefusedError:  # it exited (idle) just now
        return None
    except (OSError, ValueError):
        print(f"contrafuse: the worker stopped without answering (log: {path.with_suffix('.log')}); "
              "fusing in this process", file=sys.stderr)
        return None
    sys.stdout.write(reply["stdout"])
    sys.stdout.flush()
    sys.stderr.write(reply["stderr"])
    if started and reply["rc"] == 0 and sys.stderr.isatty():
        print(f"contrafuse: started a worker that keeps the model loaded for later runs (it exits after "
              f"{_idle_seconds():.0f} s idle; 'contrafuse worker stop'; CONTRAFUSE_WORKER=off to fuse in-process)",
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


def workers() -> list[dict]:
    """Status of every worker of this user (any code version)."""
    return _statuses(timeout=5)


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


def _idle_seconds() -> float:
    value = os.environ.get("CONTRAFUSE_WORKER_IDLE", str(DEFAULT_IDLE_SECONDS))
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ContrafuseError("CONTRAFUSE_WORKER_IDLE", f"must be a positive number of seconds, not {value!r}")
    return seconds


def servable(argv: list[str]) -> bool:
    """Only single-pair ``fuse`` runs go to a worker (a request for anything else is refused)."""
    from .cli import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = build_parser().parse_args(argv)
    except SystemExit:
        return True  # a usage error: the worker prints it as the command line would
    return args.command == "fuse" and not (args.ir_dir or args.vis_dir or args.out_dir)


class _HangUpWatch:
    """While a request runs, interrupt it (as Ctrl-C would) if its caller hangs up."""

    def __init__(self, conn: socket.socket):
        self.conn, self.done = conn, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(self.conn, select.POLLHUP | select.POLLERR)
        while not self.done.is_set():
            if poller.poll(200):
                if not self.done.is_set():
                    _thread.interrupt_main()
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


class Worker:
    """The serving side: answers requests one at a time on a listening Unix socket."""

    def __init__(self, path: Path, idle_seconds: float):
        from .methods.base import MethodCache

        self.path, self.idle_seconds = path, idle_seconds
        self.methods = MethodCache(size=2)  # a model per method and options, the last two used
        self.served, self.started = 0, time.time()
        self.base_env = dict(os.environ)
        self.socket_id: tuple | None = None

    def serve(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            listening = self.path.with_name(f".{os.getpid()}.sock")
            listening.unlink(missing_ok=True)
            server.bind(str(listening))
            try:
                server.listen(16)
                os.replace(listening, self.path)  # the socket appears already listening
                stat = self.path.stat()
                self.socket_id = (stat.st_dev, stat.st_ino)
                server.settimeout(self.idle_seconds)
                while True:
                    try:
                        conn, _ = server.accept()
                    except TimeoutError:
                        return
                    with conn:
                        try:
                            keep_serving = self._answer(conn)
                        except KeyboardInterrupt:  # a hang-up noticed just as its run finished
                            keep_serving = True
                        if not keep_serving:
                            return
            finally:
                listening.unlink(missing_ok=True)
                self._remove_socket()

    def _remove_socket(self) -> None:
        """Remove the socket file if it is still this worker's (a newer worker may own the name)."""
        with contextlib.suppress(OSError):
            stat = self.path.stat()
            if (stat.st_dev, stat.st_ino) == self.socket_id:
                self.path.unlink()

    def _answer(self, conn: socket.socket) -> bool:
        """Serve one request; False when it asks the worker to stop."""
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.geteuid():
            return True
        conn.settimeout(5)  # the request is a few hundred bytes, sent at once
        try:
            request = json.loads(b"".join(iter(lambda: conn.recv(1 << 16), b"")))
            command = request.get("command", "run")
        except (OSError, ValueError, AttributeError):
            return True
        if command == "status":
            reply = {"pid": os.getpid(), "socket": str(self.path), "package": str(Path(__file__).resolve().parent),
                     "served": self.served, "uptime_s": round(time.time() - self.started, 1),
                     "methods": self.methods.names()}
        elif command == "stop":
            self._remove_socket()  # before answering: once stopped, the name is free
            reply = {"stopped": os.getpid()}
        else:
            try:
                argv, cwd, env, umask = (list(map(str, request["argv"])), str(request["cwd"]),
                                         {str(k): str(v) for k, v in request.get("env", {}).items()},
                                         int(request.get("umask", 0o22)))
            except (KeyError, TypeError, ValueError, AttributeError):
                return True
            if not servable(argv):
                reply = {"rc": 2, "stdout": "", "stderr": "contrafuse: error: the worker only runs single-pair fuse\n"}
            else:
                with _HangUpWatch(conn):
                    reply = self.run(argv, cwd, env, umask)
                self.served += 1
        with contextlib.suppress(OSError):  # the caller may have gone
            conn.settimeout(None)
            conn.sendall(json.dumps(reply).encode())
        return command != "stop"

    def run(self, argv: list[str], cwd: str, env: dict, umask: int = 0o22) -> dict:
        """``contrafuse <argv>`` in ``cwd`` with the caller's ``CONTRAFUSE_*`` variables and file
        creation mask, output captured."""
        from .cli import main

        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            os.umask(umask)
            os.environ.clear()
            os.environ.update({k: v for k, v in self.base_env.items() if not k.startswith("CONTRAFUSE_")})
            os.environ.update(env)
            os.chdir(cwd)
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    rc = main(argv, methods=self.methods)
                except SystemExit as exc:  # argparse
                    rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
                except Exception:  # noqa: BLE001  (printed as Python would, without ending the worker)
                    traceback.print_exc()
                    rc = 1
        except OSError as exc:
            stderr.write(f"contrafuse: error: {cwd}: cannot enter the working directory ({exc.strerror})\n")
            rc = 2
        except KeyboardInterrupt:  # the caller hung up between the watch and main()
            rc = 130
        finally:
            os.chdir("/")
            os.environ.clear()
            os.environ.update(self.base_env)
        return {"rc": rc, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


class _Terminated(BaseException):
    """SIGTERM: leave through serve()'s clean-up (not an exception a run would catch)."""


def _terminate(signum, frame):
    raise _Terminated


def _serve_from_command_line() -> None:
    path, expected = Path(sys.argv[1]), sys.argv[2]
    if identity() != expected:  # this interpreter imported other code than the caller's
        print(f"contrafuse worker: code identity {identity()} is not the caller's {expected}; not serving", file=sys.stderr)
        sys.exit(1)
    signal.signal(signal.SIGTERM, _terminate)
    with contextlib.suppress(_Terminated):
        Worker(path, _idle_seconds()).serve()


if __name__ == "__main__":
    _serve_from_command_line()
