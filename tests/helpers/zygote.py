"""A warm Airflow for ``airflow dags test``: one process imports Airflow and its CLI once, then forks a child
per DAG run, and the child runs Airflow's own CLI entry point (``airflow.__main__.main``) with the run's
arguments, exactly what the ``airflow`` script runs.

Why: on Airflow 3.3 a ``dags test`` run spends about half of its ~13 s of CPU importing Airflow, the
in-process execution API and the task SDK; the suite runs dozens of them. Each run still gets a process of
its own (its own session, process group, environment, output file and exit status), started from a parent
that has done nothing but import: no metadata DB connection, no event loop, no thread.

Server side (this file run as a script, with the Airflow environment of an :class:`AirflowEnv`)::

    {"id": 1, "argv": ["airflow", "dags", "test", "my_dag"], "env": {...}, "output": "/tmp/x.log"}  # stdin
    {"id": 1, "pid": 4242}                                                                         # stdout
    {"id": 1, "exit": 0}                                                                           # stdout

Client side: :class:`Zygote` (thread-safe; several runs may be in flight). Set ``DEBITURA_COLD_AIRFLOW=1``
to run every DAG in a fresh ``airflow`` process instead (the harness then never starts a zygote).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

# What ``airflow dags test`` imports on its way (measured on 3.3.2 and 2.11.2); a name missing on one
# version is skipped. Nothing here connects to anything or starts a thread at import time.
PRELOAD = (
    "airflow.__main__",
    "airflow.cli.cli_parser",
    "airflow.cli.commands.dag_command",
    "airflow.models.dagbag",
    "airflow.models.dagrun",
    "airflow.models.taskinstance",
    "airflow.models.renderedtifields",
    "airflow.models.serialized_dag",
    "airflow.serialization.serialized_objects",
    "airflow.dag_processing.dagbag",
    "airflow.dag_processing.collection",
    "airflow.dag_processing.bundles.local",
    "airflow.migrations.utils",
    "airflow.timetables.trigger",
    "airflow.sdk",
    "airflow.sdk.definitions.decorators",
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.sdk.execution_time.cache",
    "airflow.sdk.execution_time.hitl",
    "airflow.sdk.api.client",
    "airflow.api_fastapi.execution_api.app",
    "airflow.api_fastapi.execution_api.versions",
    "airflow.jobs.triggerer_job_runner",
    "airflow.triggers.base",
    "airflow.sensors.base",
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.hitl",
    "airflow.providers.standard.triggers.hitl",
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.sensors.external_task",
    "airflow_provider_debitura.sensors.debitura",
    "airflow_provider_debitura.triggers.case_gate",
    "airflow_provider_debitura.triggers.new_tasks",
    "airflow_provider_debitura.triggers.human_handoff",
    "airflow_provider_debitura.operators.list_tasks",
    "airflow_provider_debitura.operators.reply_to_chat",
    "airflow_provider_debitura.operators.human_handoff",
    "airflow_provider_debitura.operators.reply_approval",
    "a2wsgi",
    "anyio._backends._asyncio",
    "alembic.command",
    "alembic.autogenerate",
    "alembic.runtime.environment",
    "alembic.ddl.sqlite",
    "mako.template",
    "pygments.lexers",
    "pygments.formatters",
)


# ------------------------------------------------------------------------------------------ server side


def serve() -> None:
    """Import, say ready, then fork one child per request line until stdin closes and every child has exited."""
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            __import__(name)
    _build_execution_api()
    gc.freeze()  # what the imports built stays shared with the children and out of their collections
    _say({"ready": os.getpid()})
    children: dict[int, int] = {}  # pid -> request id
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    pending = b""
    while selector.get_map() or children:
        if selector.get_map() and selector.select(timeout=0.05):
            chunk = os.read(0, 65536)
            if not chunk:
                selector.unregister(0)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = _fork(request)
                children[pid] = request["id"]
                _say({"id": request["id"], "pid": pid})
        elif not selector.get_map():
            time.sleep(0.05)
        _reap(children)


def _build_execution_api() -> None:
    """Build the in-process execution API that ``dags test`` runs its tasks through (Airflow 3), routes and
    all, so each run does not: its FastAPI app and Cadwyn's versioned routers, built on the app's first
    request, were two thirds of a run's CPU (about 5 s of 7.5 s on 3.3.2). Only the app object is built
    here, from the same configuration; its event loop, thread, lifespan and DB sessions start in the child."""
    try:
        from airflow.sdk.execution_time.supervisor import in_process_api_server
    except ImportError:  # Airflow 2: tasks run without an execution API
        return
    app = in_process_api_server().app  # cached for the process (functools.lru_cache + cached_property)
    if not getattr(app, "_cadwyn_initialized", True):
        app._cadwyn_initialize()  # what Cadwyn.__call__ does on the first request


def _reap(children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        request_id = children.pop(pid, None)
        if request_id is not None:
            _say({"id": request_id, "exit": os.waitstatus_to_exitcode(status)})


_REPLIES = -1
"""The pipe the answers go to (Airflow's logging may write to stdout while it imports)."""


def _say(message: dict[str, Any]) -> None:
    os.write(_REPLIES, (json.dumps(message) + "\n").encode())


def _fork(request: dict[str, Any]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = _child(request)
    finally:
        os._exit(code)


def _child(request: dict[str, Any]) -> int:
    """The run: a session of its own, its output to a file, its environment, then Airflow's CLI."""
    os.setsid()
    os.close(_REPLIES)
    output = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.close(stdin)
    os.environ.clear()
    os.environ.update(request["env"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import random

    random.seed()
    _dispose_inherited_engine()
    sys.argv = list(request["argv"])
    code = 0
    try:
        from airflow.__main__ import main

        main()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit
        import logging

        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
        with contextlib.suppress(Exception):
            logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    return code


def _exit_code(value: object) -> int:
    """What the interpreter does with ``SystemExit(value)``: None is 0, an int is itself, anything else is
    printed to stderr and exits 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def _dispose_inherited_engine() -> None:
    """A connection pool copied from the parent must not be shared (SQLAlchemy's rule after fork); the
    parent never connected, so this normally finds nothing to drop."""
    settings = sys.modules.get("airflow.settings")
    engine = getattr(settings, "engine", None)
    if engine is not None:
        with contextlib.suppress(Exception):
            engine.dispose(close=False)


# ------------------------------------------------------------------------------------------ client side


class Zygote:
    """The client: start the warm process with ``env`` and run Airflow CLI commands in forks of it.

    :param env: the environment the warm process imports Airflow with (AIRFLOW_HOME, the DB, the DAGs folder).
    :param python: the interpreter (the venv's).
    """

    def __init__(self, env: dict[str, str], python: str = sys.executable) -> None:
        self.env = dict(env)
        replies, replies_w = os.pipe()
        self._proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), str(replies_w)],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            pass_fds=(replies_w,),
            start_new_session=True,
        )
        os.close(replies_w)
        self._replies = os.fdopen(replies, "r")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pids: dict[int, Future[int]] = {}
        self._exits: dict[int, Future[int]] = {}
        ready = self._replies.readline()
        if "ready" not in ready:
            raise RuntimeError(f"the warm Airflow process did not start (exit {self._proc.poll()})")
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()

    def compatible(self, env: dict[str, str]) -> bool:
        """True when a run with ``env`` sees the configuration the warm process was started with (Airflow
        reads its config at import; connections and everything else are read at run time)."""

        def config(e: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in e.items() if k.startswith("AIRFLOW__") or k == "AIRFLOW_HOME"}

        return config(env) == config(self.env)

    def _read(self) -> None:
        for line in self._replies:
            message = json.loads(line)
            with self._lock:
                if "pid" in message:
                    self._pids[message["id"]].set_result(message["pid"])
                elif "exit" in message:
                    self._exits.pop(message["id"]).set_result(message["exit"])
                    self._pids.pop(message["id"], None)
        with self._lock:  # the warm process is gone: nothing pending will finish
            for future in [*self._pids.values(), *self._exits.values()]:
                if not future.done():
                    future.set_exception(RuntimeError("the warm Airflow process exited"))

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
        """Run ``argv`` (e.g. ``["airflow", "dags", "test", dag_id]``) in a fresh fork; (exit code, output).

        :param argv: the command line, ``argv[0]`` included.
        :param env: the run's whole environment.
        :param timeout: seconds; then the run's process group is killed and ``subprocess.TimeoutExpired`` raised.
        """
        request_id = next(self._ids)
        output = Path(self.env["AIRFLOW_HOME"]) / f"zygote-run-{os.getpid()}-{request_id}.log"
        pid_future: Future[int] = Future()
        exit_future: Future[int] = Future()
        with self._lock:
            self._pids[request_id], self._exits[request_id] = pid_future, exit_future
            assert self._proc.stdin is not None
            request = {"id": request_id, "argv": argv, "env": env, "output": str(output)}
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        pid = pid_future.result(timeout=60)
        try:
            code = exit_future.result(timeout=timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            exit_future.result(timeout=30)
            raise subprocess.TimeoutExpired(argv, timeout, output=_read_and_remove(output)) from None
        return code, _read_and_remove(output)

    def close(self) -> None:
        """Stop taking runs; wait for the warm process (it exits once its running children have)."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=10)
        self._reader.join(timeout=10)


def _read_and_remove(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


if __name__ == "__main__":
    _REPLIES = int(sys.argv[1])
    serve()
