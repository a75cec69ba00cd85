"""The worker process itself (:mod:`contrafuse.worker` starts it and talks to it): it answers
requests one at a time on a listening Unix socket, running each fusion job
(:class:`~contrafuse.jobs.FuseJob`) with :func:`contrafuse.cli.run_fuse_job` and a
:class:`~contrafuse.methods.MethodCache` kept between runs.

    python -m contrafuse.worker_process SOCKET IDENTITY
"""

from __future__ import annotations

import _thread
import contextlib
import io
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path

from .cli import reporting_errors, run_fuse_job
from .jobs import FuseJob
from .methods import MethodCache
from .worker import identity, idle_seconds


class _HangUpWatch:
    """While a request runs, interrupt it (as Ctrl-C would) if its caller hangs up. Leaving the
    block wakes the watching thread through a pipe, so it costs no waiting. The interrupt goes
    through Python's SIGINT handler, which the block installs for its duration (a process started
    from a background job of a non-interactive shell has SIGINT ignored) and then restores."""

    def __init__(self, conn: socket.socket):
        self.conn, self.done = conn, False
        self.lock = threading.Lock()
        self.wake_read, self.wake_write = os.pipe()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(self.conn, select.POLLHUP | select.POLLERR)
        poller.register(self.wake_read, select.POLLIN)
        events = dict(poller.poll())
        with self.lock:
            if self.conn.fileno() in events and not self.done:
                _thread.interrupt_main()

    def __enter__(self):
        self.previous = signal.getsignal(signal.SIGINT)
        if self.previous is not signal.default_int_handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:
            self.done = True
        os.write(self.wake_write, b"x")
        self.thread.join()
        os.close(self.wake_read)
        os.close(self.wake_write)
        if self.previous is not signal.default_int_handler:
            signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.SIG_DFL)


class Worker:
    """The serving side: answers requests one at a time on a listening Unix socket."""

    def __init__(self, path: Path, idle: float):
        self.path, self.idle = path, idle
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
                server.settimeout(self.idle)
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
                cwd, env, umask = (str(request["cwd"]), {str(k): str(v) for k, v in request.get("env", {}).items()},
                                   int(request.get("umask", 0o22)))
                job = FuseJob.from_message(request.get("job"))
            except (KeyError, TypeError, ValueError, AttributeError):
                reply = {"rc": 2, "stdout": "", "stderr": "contrafuse: error: the worker only runs fusion jobs\n"}
            else:
                with _HangUpWatch(conn):
                    reply = self.run(job, cwd, env, umask)
                self.served += 1
        with contextlib.suppress(OSError):  # the caller may have gone
            conn.settimeout(None)
            conn.sendall(json.dumps(reply).encode())
        return command != "stop"

    def run(self, job: FuseJob, cwd: str, env: dict, umask: int = 0o22) -> dict:
        """``job`` in ``cwd`` with the caller's ``CONTRAFUSE_*`` variables and file creation mask,
        output captured."""
        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            os.umask(umask)
            os.environ.clear()
            os.environ.update({k: v for k, v in self.base_env.items() if not k.startswith("CONTRAFUSE_")})
            os.environ.update(env)
            os.chdir(cwd)
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    rc = reporting_errors(lambda: run_fuse_job(job, self.methods))
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
        Worker(path, idle_seconds()).serve()


if __name__ == "__main__":
    _serve_from_command_line()
