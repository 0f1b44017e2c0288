"""``Runner`` and ``NBRunner``: start runs from Python code, as Metaflow's runner API.

A programmatic run is the same thing as a run from the terminal: ``python flow.py
[top options] run [options]`` in a child process. Keyword arguments become options
(``Runner("flow.py", datastore_root=d).run(alpha=0.5, tags=["x"])`` is
``python flow.py --datastore-root d run --alpha 0.5 --tag x``), the child's output is
kept in spool files (and echoed when ``show_output``), and the ``ExecutingRun`` that
comes back gives the client ``Run`` once the child has written its run id.

``NBRunner`` does the same for a flow class defined in a notebook cell: it writes the
cell's source up to the end of that class, plus the usual ``__main__`` guard, to a
temporary file, since each task must be able to import the flow from a file.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

from .exceptions import MetaflowlikeException

#: run/resume options that are not flow parameters: keyword -> command-line option
_RUN_OPTIONS = {
    "tags": "--tag",
    "tag": "--tag",
    "max_workers": "--max-workers",
    "max_num_splits": "--max-num-splits",
    "decospecs": "--with",
    "origin_run_id": "--origin-run-id",
}


#: top-level options that take NAME VALUE
_PAIR_OPTIONS = ("--config", "--config-value")


class RunnerError(MetaflowlikeException):
    headline = "Cannot start the run"


def _option_args(option: str, value: Any) -> list[str]:
    """``--opt value`` for one keyword argument; a list repeats the option."""
    if option in _PAIR_OPTIONS:  # {NAME: VALUE}, [(NAME, VALUE), ...] or (NAME, VALUE)
        if isinstance(value, dict):
            pairs = list(value.items())
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            pairs = [value]
        else:
            pairs = list(value)
        args = []
        for name, arg in pairs:
            args += [option, name, arg if isinstance(arg, str) else json.dumps(arg)]
        return args
    if value is None or value is False:
        return []
    if value is True:
        return [option]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in _option_args(option, item)]
    return [option, str(value)]


def _top_args(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        args += _option_args("--" + key.replace("_", "-"), value)
    return args


class _DeclaredParameter:
    def __init__(self, name: str, separator: str | None) -> None:
        self.name, self.separator = name, separator


def declared_parameters(source: str) -> dict[str, _DeclaredParameter]:
    """``Parameter("name", separator=...)`` assignments in class bodies, read from the
    source without running it: python identifier (attribute and dashed name) -> param."""
    found: dict[str, _DeclaredParameter] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return found
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
                continue
            call = stmt.value
            func = call.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in ("Parameter", "IncludeFile") or not call.args:
                continue
            first = call.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            sep = next(
                (
                    k.value.value
                    for k in call.keywords
                    if k.arg == "separator"
                    and isinstance(k.value, ast.Constant)
                    and isinstance(k.value.value, str)
                ),
                None,
            )
            param = _DeclaredParameter(first.value, sep)
            found[first.value.replace("-", "_")] = param
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = param
    return found


def _param_value(value: Any, param: _DeclaredParameter | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)) and param is not None and param.separator:
        return param.separator.join(str(v) for v in value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


class _Spool:
    """Copies one output pipe of the child to a file, and to the console if asked."""

    def __init__(self, pipe: Any, path: str, echo: TextIO | None) -> None:
        self.path = path
        self.thread = threading.Thread(target=self._copy, args=(pipe, echo), daemon=True)
        self.thread.start()

    def _copy(self, pipe: Any, echo: TextIO | None) -> None:
        with open(self.path, "ab") as out:
            for line in iter(pipe.readline, b""):
                out.write(line)
                out.flush()
                if echo is not None:
                    echo.write(line.decode(errors="replace"))
                    echo.flush()
        pipe.close()


class ExecutingRun:
    """A run started by a ``Runner``: its process, its output and its client ``Run``.

    ``status`` is ``"running"``, ``"successful"`` or ``"failed"``; ``stdout`` and
    ``stderr`` are the child's whole output so far."""

    def __init__(
        self,
        runner: Runner,
        command: list[str],
        proc: subprocess.Popen,
        spools: dict[str, _Spool],
        run_id_file: str,
    ) -> None:
        self.runner = runner
        self.command = command
        self.proc = proc
        self._spools = spools
        self._run_id_file = run_id_file
        self._run: Any = None
        self._run_id: str | None = None
        self._output: dict[str, str] = {}  # kept once the spool files are cleaned up

    def __repr__(self) -> str:
        return f"<ExecutingRun {self.status} pid={self.proc.pid}>"

    def __enter__(self) -> ExecutingRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.cleanup()

    # --- state -----------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def status(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "running"
        return "successful" if code == 0 else "failed"

    @property
    def run_id(self) -> str | None:
        if self._run_id is None:
            try:
                with open(self._run_id_file) as f:
                    self._run_id = f.read().strip() or None
            except OSError:
                pass
        return self._run_id

    @property
    def run(self) -> Any:
        """The client ``Run`` (None if the child stopped before creating a run)."""
        if self._run is None:
            run_id = self.run_id
            if run_id is None:
                return None
            self._run = self.runner._client_run(run_id)
        return self._run

    def _read(self, stream: str) -> str:
        if stream in self._output:
            return self._output[stream]
        try:
            with open(self._spools[stream].path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    @property
    def stdout(self) -> str:
        return self._read("stdout")

    @property
    def stderr(self) -> str:
        return self._read("stderr")

    # --- waiting ---------------------------------------------------------------------

    def _finish(self) -> None:
        for spool in self._spools.values():
            spool.thread.join()

    def wait_sync(self, timeout: float | None = None) -> ExecutingRun:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self
        self._finish()
        return self

    async def wait(self, timeout: float | None = None, stream: str | None = None) -> ExecutingRun:
        """Wait (without blocking the event loop) until the run ends or ``timeout``
        seconds pass; with ``stream`` ("stdout"/"stderr"), echo that stream meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        position = 0
        while True:
            if stream:
                text = self._read(stream)
                if len(text) > position:
                    sys.stdout.write(text[position:])
                    position = len(text)
            if self.proc.poll() is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._finish)
                if stream:
                    sys.stdout.write(self._read(stream)[position:])
                return self
            if deadline is not None and time.monotonic() > deadline:
                return self
            await asyncio.sleep(0.05)

    async def stream_log(
        self, stream: str = "stdout", position: int | None = None
    ) -> AsyncIterator[tuple[int, str]]:
        """Yield ``(position, line)`` for each complete line of ``stream`` as the run
        writes it, until the run ends; start at ``position`` to continue a stream."""
        offset = position or 0
        while True:
            done = self.proc.poll() is not None
            if done:
                await asyncio.get_running_loop().run_in_executor(None, self._finish)
            data = self._read(stream)
            while True:
                end = data.find("\n", offset)
                if end < 0:
                    break
                yield offset, data[offset:end]
                offset = end + 1
            if done:
                if offset < len(data):
                    yield offset, data[offset:]
                return
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """Stop the run (its runtime and every task)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._finish()
        self.run_id  # noqa: B018 - read before the spool folder goes
        self._output = {name: self._read(name) for name in self._spools}


class Runner:
    """Run a flow file from Python: ``Runner("flow.py").run(alpha=0.5).run.data.x``.

    ``show_output`` echoes the run's output (blocking ``run``/``resume`` only);
    ``env`` adds environment variables; ``cwd`` is where the run starts (so where a
    local datastore is found). Other keyword arguments are top-level options of the
    flow's command line (``datastore_root=...``, ``branch=...``, ``config_value=...``)."""

    def __init__(
        self,
        flow_file: str,
        show_output: bool = True,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        file_read_timeout: int = 3600,
        **kwargs: Any,
    ) -> None:
        if not os.path.isfile(flow_file):
            raise RunnerError(f'Runner: the flow file "{flow_file}" does not exist.')
        self.flow_file = os.path.abspath(flow_file)
        self.show_output = show_output
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd or os.getcwd()
        # `--with` is an option of run/resume here, a top-level one in Metaflow
        self._decospecs = list(kwargs.pop("decospecs", None) or [])
        self.top_level_kwargs = kwargs
        with open(self.flow_file, encoding="utf-8") as f:
            self._parameters = declared_parameters(f.read())
        self._tmp = tempfile.mkdtemp(prefix="mfl-runner-")
        self._runs: list[ExecutingRun] = []

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop runs still going and delete the spool files."""
        for executing in self._runs:
            executing.kill()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # --- commands --------------------------------------------------------------------

    def run(self, **kwargs: Any) -> ExecutingRun:
        """Run the flow and wait for it; keyword arguments are parameters and run
        options (``tags``, ``max_workers``, ``decospecs``)."""
        return self._start("run", kwargs, echo=self.show_output).wait_sync()

    def resume(self, **kwargs: Any) -> ExecutingRun:
        """Resume a run and wait for it (``step_to_rerun=``, ``origin_run_id=``)."""
        return self._start("resume", kwargs, echo=self.show_output).wait_sync()

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        """Start the flow and return as soon as its run exists (or it failed to start)."""
        return await self._started(self._start("run", kwargs, echo=False))

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        return await self._started(self._start("resume", kwargs, echo=False))

    async def _started(self, executing: ExecutingRun) -> ExecutingRun:
        while executing.run_id is None and executing.proc.poll() is None:
            await asyncio.sleep(0.05)
        return executing

    def _command(self, command: str, kwargs: dict[str, Any], run_id_file: str) -> list[str]:
        cmd = [sys.executable, self.flow_file, *_top_args(self.top_level_kwargs), command]
        if command == "resume" and kwargs.get("step_to_rerun"):
            cmd.append(str(kwargs.pop("step_to_rerun")))
        kwargs.pop("step_to_rerun", None)
        if self._decospecs:
            kwargs["decospecs"] = self._decospecs + list(kwargs.get("decospecs") or [])
        for key, value in kwargs.items():
            param = self._parameters.get(key)
            if param is not None:
                cmd += [f"--{param.name}", _param_value(value, param)]
            elif key in _RUN_OPTIONS:
                cmd += _option_args(_RUN_OPTIONS[key], value)
            else:
                cmd += _option_args("--" + key.replace("_", "-"), value)
        return cmd + ["--run-id-file", run_id_file]

    def _start(self, command: str, kwargs: dict[str, Any], echo: bool) -> ExecutingRun:
        n = len(self._runs)
        run_id_file = os.path.join(self._tmp, f"run-id-{n}")
        cmd = self._command(command, dict(kwargs), run_id_file)
        proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # kill() stops the runtime and its tasks together
        )
        spools = {
            name: _Spool(
                pipe,
                os.path.join(self._tmp, f"{name}-{n}.log"),
                (sys.stdout if name == "stdout" else sys.stderr) if echo else None,
            )
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))
        }
        executing = ExecutingRun(self, cmd, proc, spools, run_id_file)
        self._runs.append(executing)
        return executing

    def _client_run(self, run_id: str) -> Any:
        """The client ``Run`` in the datastore the child wrote to, in any namespace."""
        from . import config
        from .client.objects import Run
        from .client.settings import _Store

        ds_type = self.top_level_kwargs.get("datastore") or self.env.get("METAFLOWLIKE_DATASTORE")
        root = self.top_level_kwargs.get("datastore_root") or self.env.get(
            "METAFLOWLIKE_DATASTORE_ROOT"
        )
        cwd = os.getcwd()
        os.chdir(self.cwd)  # a default local datastore is relative to where the run started
        try:
            store = _Store(config.open_datastore(ds_type, root))
        finally:
            os.chdir(cwd)
        flow = _flow_name(self.flow_file)
        rec = store.run_record(flow, run_id)
        if rec is None:
            raise RunnerError(f"The run {flow}/{run_id} has no record in {store.storage.url()}.")
        return Run._make(store, None, run_id, rec)


def _flow_name(flow_file: str) -> str:
    """The FlowSpec subclass the file runs (the class its ``__main__`` block creates)."""
    with open(flow_file, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    classes = [
        n.name
        for n in tree.body
        if isinstance(n, ast.ClassDef)
        and any(getattr(b, "id", getattr(b, "attr", "")).endswith("FlowSpec") for b in n.bases)
    ]
    called = [
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in classes
    ]
    if called:
        return called[-1]
    if classes:
        return classes[-1]
    raise RunnerError(f"{flow_file} defines no FlowSpec subclass.")


class NBRunner:
    """Run a flow class defined in the current notebook cell: put
    ``NBRunner(MyFlow).nbrun(alpha=0.5)`` on the last line of the cell that defines
    ``MyFlow``; the cell must hold the imports the flow needs."""

    def __init__(
        self,
        flow: type,
        show_output: bool = True,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        base_dir: str | None = None,
        file_read_timeout: int = 3600,
        **kwargs: Any,
    ) -> None:
        source = _cell_source(flow)
        self._dir = tempfile.mkdtemp(prefix="mfl-nbrunner-", dir=base_dir)
        self.flow_file = os.path.join(self._dir, f"{flow.__name__}.py")
        with open(self.flow_file, "w", encoding="utf-8") as f:
            f.write(source)
        self.runner = Runner(
            self.flow_file, show_output=show_output, profile=profile, env=env, **kwargs
        )

    def nbrun(self, **kwargs: Any) -> Any:
        """Run, wait, and return the client ``Run`` (None if no run was created)."""
        return self.run(**kwargs).run

    def nbresume(self, **kwargs: Any) -> Any:
        return self.resume(**kwargs).run

    def run(self, **kwargs: Any) -> ExecutingRun:
        return self.runner.run(**kwargs)

    def resume(self, **kwargs: Any) -> ExecutingRun:
        return self.runner.resume(**kwargs)

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        return await self.runner.async_run(**kwargs)

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        return await self.runner.async_resume(**kwargs)

    def cleanup(self) -> None:
        """Delete the temporary flow file and the run's spool files."""
        self.runner.cleanup()
        shutil.rmtree(self._dir, ignore_errors=True)


def _cell_source(flow: type) -> str:
    """The running cell's code up to the end of ``flow``'s class, as a runnable file."""
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None  # noqa: N806
    shell = get_ipython() if get_ipython else None
    if shell is None:
        raise RunnerError(
            "NBRunner runs a flow defined in a notebook cell; outside a notebook use "
            'Runner("flow.py") instead.'
        )
    raw = shell.user_ns.get("_ih", [""])[-1] if shell.user_ns.get("_ih") else ""
    code = shell.transform_cell(raw) if raw else ""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise RunnerError(f"NBRunner cannot read the current cell: {e}.") from None
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == flow.__name__]
    if not found:
        raise RunnerError(
            f"NBRunner({flow.__name__}): the class must be defined in the same cell as the "
            "NBRunner call, with the imports it needs."
        )
    lines = code.splitlines()[: found[-1].end_lineno]
    lines += ["", "", 'if __name__ == "__main__":', f"    {flow.__name__}()", ""]
    return "\n".join(lines)
