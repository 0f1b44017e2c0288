"""A test-only Amazon States Language interpreter, to *execute* exported state machines.

moto validates and stores state machines but does not run ``batch:submitJob.sync``
tasks, so this interpreter runs the exported document itself, following the ASL
specification for what the exporter uses: Pass, Task, Choice, Map (inline), Parallel,
Succeed and Fail; Parameters / ItemSelector / ResultSelector payload templates with
JSONPath and the intrinsic functions States.Format, States.Array, States.JsonToString
and States.StringToJson; InputPath, ResultPath and OutputPath; Retry (``States.ALL``
and named errors, MaxAttempts; the intervals are recorded, not slept) and Catch;
TimeoutSeconds; the context object (``$$.Execution.Name``, ``$$.State.RetryCount``,
``$$.Map.Item.Value`` / ``Index``).

Two resources are served:

- ``arn:aws:states:::batch:submitJob.sync``: the job's container command runs as a
  subprocess in an empty folder, with only the job's declared environment plus the
  node's credentials and a Python that has boto3 but not metaflowlike
  (``tests/deployed_tasks.py``); a non-zero exit is ``States.TaskFailed``, as a failed
  job is for Step Functions; the result is the job's description (``JobId``...);
- ``arn:aws:states:::aws-sdk:s3:getObject``: a real GetObject on S3 (moto), returning
  ``Body`` as text, as the SDK integration does.

Anything else raises, so an exporter cannot rely on something this does not check.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BATCH_SYNC = "arn:aws:states:::batch:submitJob.sync"
S3_GET = "arn:aws:states:::aws-sdk:s3:getObject"


class StatesError(Exception):
    """A runtime error of the state machine (``Error`` and ``Cause``)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


# --- JSONPath (the subset ASL documents use) --------------------------------------------

_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\[\*\]|\['([^']*)'\]")


def json_path(path: str, data: Any, context: dict) -> Any:
    if path.startswith("$$"):
        root, rest = context, path[2:]
    elif path.startswith("$"):
        root, rest = data, path[1:]
    else:
        raise StatesError("States.Runtime", f"not a path: {path!r}")
    values, many = [root], False
    pos = 0
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if m is None:
            raise StatesError("States.Runtime", f"unsupported JSONPath {path!r}")
        pos = m.end()
        out = []
        for v in values:
            if m.group(1) is not None or m.group(3) is not None:
                key = m.group(1) if m.group(1) is not None else m.group(3)
                if not isinstance(v, dict) or key not in v:
                    if many:
                        continue
                    raise StatesError("States.Runtime", f"{path!r} not found in the input")
                out.append(v[key])
            elif m.group(2) is not None:
                out.append(v[int(m.group(2))])
            else:
                if not isinstance(v, list):
                    raise StatesError("States.Runtime", f"{path!r}: [*] on a non-list")
                out.extend(v)
                many = True
        values = out
    return values if many else values[0]


# --- intrinsic functions ------------------------------------------------------------------


class _Intrinsic:
    """Parses and evaluates ``States.X(arg, ...)`` with nested calls."""

    def __init__(self, text: str, data: Any, context: dict) -> None:
        self.text, self.pos, self.data, self.context = text, 0, data, context

    def evaluate(self) -> Any:
        value = self.expr()
        self.skip()
        if self.pos != len(self.text):
            raise StatesError("States.Runtime", f"trailing text in {self.text!r}")
        return value

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def expr(self) -> Any:
        self.skip()
        t = self.text
        if t.startswith("States.", self.pos):
            m = re.compile(r"States\.([A-Za-z]+)\(").match(t, self.pos)
            if m is None:
                raise StatesError("States.Runtime", f"bad intrinsic at {t[self.pos :]!r}")
            self.pos = m.end()
            args = []
            self.skip()
            if t[self.pos] != ")":
                while True:
                    args.append(self.expr())
                    self.skip()
                    if t[self.pos] == ",":
                        self.pos += 1
                        continue
                    break
            if t[self.pos] != ")":
                raise StatesError("States.Runtime", f"missing ')' in {t!r}")
            self.pos += 1
            return _call(m.group(1), args)
        if t[self.pos] == "'":
            self.pos += 1
            out = []
            while t[self.pos] != "'":
                if t[self.pos] == "\\":
                    self.pos += 1
                out.append(t[self.pos])
                self.pos += 1
            self.pos += 1
            return "".join(out)
        if t[self.pos] == "$":
            m = re.compile(r"\$\$?[^,)\s]*").match(t, self.pos)
            self.pos = m.end()
            return json_path(m.group(), self.data, self.context)
        m = re.compile(r"-?\d+(\.\d+)?").match(t, self.pos)
        if m is None:
            raise StatesError("States.Runtime", f"cannot parse {t[self.pos :]!r}")
        self.pos = m.end()
        return json.loads(m.group())


def _call(name: str, args: list) -> Any:
    if name == "Format":
        template, values = args[0], list(args[1:])
        parts = re.split(r"(?<!\\)\{\}", template)
        if len(parts) - 1 != len(values):
            raise StatesError("States.IntrinsicFailure", f"Format: {len(values)} arguments")
        out = parts[0]
        for value, part in zip(values, parts[1:]):
            text = value if isinstance(value, str) else json.dumps(value)
            out += text + part
        return out
    if name == "Array":
        return list(args)
    if name == "JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "StringToJson":
        return json.loads(args[0])
    raise StatesError("States.Runtime", f"intrinsic States.{name} is not supported here")


def value_of(expr: str, data: Any, context: dict) -> Any:
    if expr.startswith("States."):
        return _Intrinsic(expr, data, context).evaluate()
    return json_path(expr, data, context)


def template(payload: Any, data: Any, context: dict) -> Any:
    """A payload template (Parameters, ItemSelector, ResultSelector) filled in."""
    if isinstance(payload, dict):
        out = {}
        for key, value in payload.items():
            if key.endswith(".$"):
                out[key[:-2]] = value_of(value, data, context)
            else:
                out[key] = template(value, data, context)
        return out
    if isinstance(payload, list):
        return [template(v, data, context) for v in payload]
    return payload


def put_result(data: Any, result: Any, path: Any) -> Any:
    if path is None:
        return data
    if path == "$":
        return result
    if not path.startswith("$."):
        raise StatesError("States.Runtime", f"unsupported ResultPath {path!r}")
    out = copy.deepcopy(data)
    node = out
    keys = path[2:].split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = result
    return out


# --- the interpreter ---------------------------------------------------------------------


@dataclass
class Job:
    job_id: str
    name: str
    command: list[str]
    env: dict[str, str]
    returncode: int
    output: str


@dataclass
class Execution:
    """One execution's record: what ran, for the tests to look at."""

    name: str
    status: str = "RUNNING"
    output: Any = None
    error: StatesError | None = None
    jobs: list[Job] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    retry_intervals: list[tuple[str, int]] = field(default_factory=list)


class Interpreter:
    def __init__(
        self,
        definition: dict,
        *,
        sdk_python: Path,
        s3_url: str,
        s3_client: Any,
        max_parallel: int = 2,
    ) -> None:
        self.definition = definition
        self.sdk_python, self.s3_url, self.s3 = sdk_python, s3_url, s3_client
        self.max_parallel = max_parallel
        self.lock = threading.Lock()

    def start(self, payload: Any, name: str | None = None) -> Execution:
        execution = Execution(name or uuid.uuid4().hex[:12])
        context = {"Execution": {"Name": execution.name, "Input": payload}}
        try:
            execution.output = self.run_states(self.definition, payload, context, execution)
            execution.status = "SUCCEEDED"
        except StatesError as e:
            execution.status, execution.error = "FAILED", e
        return execution

    def run_states(self, machine: dict, data: Any, context: dict, ex: Execution) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            with self.lock:
                ex.visited.append(name)
            kind = state["Type"]
            if kind == "Succeed":
                return data
            if kind == "Fail":
                raise StatesError(state.get("Error", "States.Fail"), state.get("Cause", ""))
            if kind == "Choice":
                name = self.choose(state, data, context)
                continue
            ctx = {**context, "State": {"Name": name, "RetryCount": 0}}
            try:
                data = self.run_with_retries(name, state, data, ctx, ex)
            except StatesError as e:
                handler = _catcher(state, e)
                if handler is None:
                    raise
                error = {"Error": e.error, "Cause": e.cause}
                data = put_result(data, error, handler.get("ResultPath", "$"))
                name = handler["Next"]
                continue
            if state.get("End"):
                return data
            name = state["Next"]

    def choose(self, state: dict, data: Any, context: dict) -> str:
        for rule in state["Choices"]:
            value = json_path(rule["Variable"], data, context)
            for op, expected in rule.items():
                if op in ("Variable", "Next"):
                    continue
                if op not in ("StringEquals", "NumericEquals", "BooleanEquals"):
                    raise StatesError("States.Runtime", f"Choice operator {op} not supported")
                if value == expected:
                    return rule["Next"]
        if "Default" not in state:
            raise StatesError("States.NoChoiceMatched", str(data)[:200])
        return state["Default"]

    def run_with_retries(self, name: str, state: dict, data: Any, ctx: dict, ex: Execution) -> Any:
        attempt = 0
        while True:
            ctx["State"]["RetryCount"] = attempt
            try:
                return self.run_state(state, data, ctx, ex)
            except StatesError as e:
                rule = _retrier(state, e)
                if rule is None or attempt >= rule.get("MaxAttempts", 3):
                    raise
                with self.lock:
                    ex.retry_intervals.append((name, rule.get("IntervalSeconds", 1)))
                attempt += 1

    def run_state(self, state: dict, data: Any, ctx: dict, ex: Execution) -> Any:
        kind = state["Type"]
        effective = json_path(state.get("InputPath", "$"), data, ctx)
        if kind == "Pass":
            if "Parameters" in state:
                result = template(state["Parameters"], effective, ctx)
            else:
                result = state.get("Result", effective)
        elif kind == "Task":
            params = template(state.get("Parameters", {}), effective, ctx)
            result = self.task(state["Resource"], params, state.get("TimeoutSeconds"), ex)
        elif kind == "Map":
            items = json_path(state.get("ItemsPath", "$"), effective, ctx)
            processor = state.get("ItemProcessor") or state["Iterator"]
            selector = state.get("ItemSelector") or state.get("Parameters")

            def one(index_value):
                index, value = index_value
                item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": value}}}
                item = template(selector, effective, item_ctx) if selector else value
                return self.run_states(processor, item, {"Execution": ctx["Execution"]}, ex)

            workers = min(self.max_parallel, state.get("MaxConcurrency") or self.max_parallel)
            with ThreadPoolExecutor(max(1, workers)) as pool:
                result = list(pool.map(one, enumerate(items)))
        elif kind == "Parallel":
            with ThreadPoolExecutor(self.max_parallel) as pool:
                futures = [
                    pool.submit(self.run_states, b, effective, {"Execution": ctx["Execution"]}, ex)
                    for b in state["Branches"]
                ]
                result = [f.result() for f in futures]
        else:
            raise StatesError("States.Runtime", f"state type {kind} not supported")
        if "ResultSelector" in state:
            result = template(state["ResultSelector"], result, ctx)
        out = put_result(data, result, state.get("ResultPath", "$"))
        return json_path(state.get("OutputPath", "$"), out, ctx)

    # --- resources ------------------------------------------------------------------

    def task(self, resource: str, params: dict, timeout: int | None, ex: Execution) -> Any:
        if resource == BATCH_SYNC:
            return self.batch_job(params, timeout, ex)
        if resource == S3_GET:
            try:
                got = self.s3.get_object(Bucket=params["Bucket"], Key=params["Key"])
            except Exception as e:  # noqa: BLE001 - what the SDK integration reports
                raise StatesError("S3.NoSuchKeyException", str(e)) from None
            return {"Body": got["Body"].read().decode(), "ContentType": got.get("ContentType")}
        raise StatesError("States.Runtime", f"resource {resource} is not served here")

    def batch_job(self, params: dict, timeout: int | None, ex: Execution) -> dict:
        import subprocess

        from tests.deployed_tasks import run_container

        overrides = params["ContainerOverrides"]
        env = {e["Name"]: str(e["Value"]) for e in overrides.get("Environment", [])}
        job_id = str(uuid.uuid4())
        env["AWS_BATCH_JOB_ID"] = job_id
        env["AWS_BATCH_JQ_NAME"] = params["JobQueue"]
        limit = (params.get("Timeout") or {}).get("AttemptDurationSeconds") or timeout or 600
        try:
            proc = run_container(
                self.sdk_python, overrides["Command"], env, self.s3_url, timeout=limit
            )
            code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            code, output = -1, "timed out"
        job = Job(job_id, params["JobName"], overrides["Command"], env, code, output)
        with self.lock:
            ex.jobs.append(job)
        if code != 0:
            raise StatesError(
                "States.TaskFailed",
                json.dumps({"JobId": job_id, "Status": "FAILED", "StatusReason": output[-500:]}),
            )
        return {"JobId": job_id, "JobName": params["JobName"], "Status": "SUCCEEDED"}


def _matches(rule: dict, error: StatesError) -> bool:
    names = rule.get("ErrorEquals", [])
    return error.error in names or ("States.ALL" in names and error.error != "States.Runtime")


def _retrier(state: dict, error: StatesError) -> dict | None:
    return next((r for r in state.get("Retry", []) if _matches(r, error)), None)


def _catcher(state: dict, error: StatesError) -> dict | None:
    return next((c for c in state.get("Catch", []) if _matches(c, error)), None)
