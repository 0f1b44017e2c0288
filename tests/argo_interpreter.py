"""A test-only Argo Workflows engine: runs an exported workflow the way the controller would.

No Argo controller exists on test machines, so this interpreter executes the documents
``argo-workflows create`` generates, to prove they work and not only that they validate.
It implements the part of Argo's semantics the exporter relies on, strictly (anything
else is an error, never silently ignored):

- a ``Workflow`` referring to a ``WorkflowTemplate`` (``workflowTemplateRef``), whose
  ``arguments.parameters`` override the template's defaults;
- ``dag`` templates: tasks start once every task of ``dependencies`` has succeeded (or
  was skipped), ``when`` (``A == B`` / ``A != B`` after substitution) skips a task,
  ``withParam`` fans a task out over a JSON list (``{{item}}``), and the outputs of a
  fanned-out task read as a JSON list of each child's value, as in Argo;
- ``container`` templates: the command runs as a subprocess in an empty temporary folder
  (the container's ``workingDir``), with only the container's declared environment
  (``value``, ``fieldRef`` to the pod's name or namespace, ``envFrom`` secrets) plus
  what the node gives every pod, and the "image"'s Python (one with the cloud SDK but no
  metaflowlike) first on ``PATH``; ``outputs.parameters`` are read from
  ``valueFrom.path`` (paths under ``workingDir`` map into that folder);
  ``activeDeadlineSeconds`` kills the pod; ``retryStrategy`` reruns a failed pod up to
  ``limit`` more times after its ``backoff`` and ``{{retries}}`` counts the attempts;
- substitution of ``{{workflow.name}}``, ``{{workflow.parameters.X}}``,
  ``{{inputs.parameters.X}}``, ``{{tasks.T.outputs.parameters.X}}``, ``{{item}}``,
  ``{{retries}}`` and ``{{pod.name}}``; an unknown reference is an error, as Argo's
  validation makes it.

Pods run at most ``slots`` at a time; independent tasks run concurrently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import containers

_REF = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class ArgoError(Exception):
    """The document asks for something this interpreter (or Argo) would reject."""


@dataclass
class PodRun:
    """One attempt of one container node."""

    node: str  # e.g. "main.body(1).inner(0).square"
    template: str
    name: str
    attempt: int
    command: list[str]
    env: dict[str, str]
    exit_code: int | None = None
    reason: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkflowRun:
    name: str
    phase: str = "Running"  # Succeeded | Failed
    message: str = ""
    pods: list[PodRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def pods_of(self, template: str) -> list[PodRun]:
        return [p for p in self.pods if p.template == template]


class _Failed(Exception):
    pass


class Interpreter:
    def __init__(
        self,
        *,
        python: Path,
        log_dir: Path,
        node_env: dict[str, str] | None = None,
        secrets: dict[str, dict[str, str]] | None = None,
        slots: int = 2,
        namespace: str = "default",
    ) -> None:
        self.python, self.log_dir = Path(python), Path(log_dir)
        self.node_env = dict(node_env or {})
        self.secrets = secrets or {}
        self.slots = threading.Semaphore(slots)
        self.namespace = namespace
        self.lock = threading.Lock()

    # --- a workflow ----------------------------------------------------------------

    def run(self, workflow: dict, templates: dict[str, dict]) -> WorkflowRun:
        """Execute ``workflow`` (a Workflow document); ``templates`` maps the names of
        the WorkflowTemplates it may refer to onto their documents."""
        wf_spec = workflow["spec"]
        ref = wf_spec.get("workflowTemplateRef")
        if ref:
            if ref["name"] not in templates:
                raise ArgoError(f'workflowTemplateRef "{ref["name"]}" does not exist')
            spec = json.loads(json.dumps(templates[ref["name"]]["spec"]))
        else:
            spec = json.loads(json.dumps(wf_spec))
        params = {
            p["name"]: p.get("value") for p in spec.get("arguments", {}).get("parameters", [])
        }
        for p in wf_spec.get("arguments", {}).get("parameters", []):
            if p["name"] not in params:
                raise ArgoError(f'the workflow argument "{p["name"]}" is not a parameter')
            params[p["name"]] = p.get("value")
        for name, value in params.items():
            if value is None:
                raise ArgoError(f'the workflow parameter "{name}" has no value')
        name = workflow["metadata"].get("name")
        if not name:
            raise ArgoError("the workflow has no metadata.name")
        self.templates = {t["name"]: t for t in spec["templates"]}
        self.workflow_vars = {"workflow.name": name, "workflow.namespace": self.namespace}
        self.workflow_vars.update({f"workflow.parameters.{k}": v for k, v in params.items()})
        self.result = WorkflowRun(name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._invoke(spec["entrypoint"], {}, "main")
            self.result.phase = "Succeeded"
        except _Failed as e:
            self.result.phase, self.result.message = "Failed", str(e)
        return self.result

    # --- templates -----------------------------------------------------------------

    def _template(self, name: str) -> dict:
        if name not in self.templates:
            raise ArgoError(f'template "{name}" is not defined')
        return self.templates[name]

    def _invoke(self, name: str, arguments: dict[str, str], node: str) -> dict[str, str]:
        """Run template ``name`` with input parameters ``arguments``; its outputs."""
        tpl = self._template(name)
        inputs = {}
        for p in tpl.get("inputs", {}).get("parameters", []):
            if p["name"] in arguments:
                inputs[p["name"]] = arguments[p["name"]]
            elif "value" in p or "default" in p:
                inputs[p["name"]] = p.get("value", p.get("default"))
            else:
                raise ArgoError(f'{node}: input parameter "{p["name"]}" of "{name}" is not given')
        unknown = set(arguments) - set(inputs)
        if unknown:
            raise ArgoError(f'{node}: "{name}" has no input parameter {sorted(unknown)}')
        scope = dict(self.workflow_vars)
        scope.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
        if "dag" in tpl:
            return self._dag(tpl, scope, node)
        if "container" in tpl:
            return self._pod(tpl, scope, node)
        raise ArgoError(f'template "{name}": only dag and container templates are supported')

    def _dag(self, tpl: dict, scope: dict[str, str], node: str) -> dict[str, str]:
        tasks = {t["name"]: t for t in tpl["dag"]["tasks"]}
        for t in tasks.values():
            if "depends" in t:
                raise ArgoError(f"{node}.{t['name']}: use dependencies, not depends")
            for dep in t.get("dependencies", []):
                if dep not in tasks:
                    raise ArgoError(f'{node}.{t["name"]}: unknown dependency "{dep}"')
        state: dict[str, str] = {}  # name -> Succeeded | Skipped | Failed
        outputs: dict[str, dict[str, str]] = {}
        running: dict[str, threading.Thread] = {}
        errors: list[BaseException] = []
        done = threading.Condition(self.lock)

        def work(t: dict, local: dict[str, str]) -> None:
            try:
                outs = self._task(t, local, f"{node}.{t['name']}")
                status = "Skipped" if outs is None else "Succeeded"
            except BaseException as e:  # noqa: BLE001 - reported to the DAG's loop
                outs, status = None, "Failed"
                errors.append(e)
            with done:
                state[t["name"]] = status
                if outs is not None:
                    outputs[t["name"]] = outs
                done.notify_all()

        with done:
            while len(state) < len(tasks):
                if not errors:
                    for name, t in tasks.items():
                        if name in state or name in running:
                            continue
                        deps = t.get("dependencies", [])
                        if any(state.get(d) in ("Failed", "Omitted") for d in deps):
                            state[name] = "Omitted"
                            continue
                        if all(state.get(d) in ("Succeeded", "Skipped") for d in deps):
                            local = dict(scope)
                            for tname, outs in outputs.items():
                                for k, v in outs.items():
                                    local[f"tasks.{tname}.outputs.parameters.{k}"] = v
                            thread = threading.Thread(target=work, args=(t, local), daemon=True)
                            running[name] = thread
                            thread.start()
                if errors and all(n in state for n in running):
                    break
                if all(n in state for n in running) and len(running) + sum(
                    1 for s in state.values() if s == "Omitted"
                ) == len(state) < len(tasks):
                    raise ArgoError(f"{node}: the dependencies of its tasks form a cycle")
                if len(state) < len(tasks):
                    done.wait(1)
        if errors:
            error = errors[0]
            raise error if isinstance(error, (_Failed, ArgoError)) else _Failed(str(error))
        local = dict(scope)
        for tname, outs in outputs.items():
            for k, v in outs.items():
                local[f"tasks.{tname}.outputs.parameters.{k}"] = v
        result = {}
        for p in tpl.get("outputs", {}).get("parameters", []):
            ref = p.get("valueFrom", {}).get("parameter")
            if ref is None:
                raise ArgoError(f"{node}: DAG output {p['name']} needs valueFrom.parameter")
            result[p["name"]] = _substitute(ref, local, node)
        return result

    def _task(self, t: dict, scope: dict[str, str], node: str) -> dict[str, str] | None:
        """Run one DAG task (fanned out with withParam); None if ``when`` skipped it."""
        if "when" in t and not _condition(_substitute(t["when"], scope, node), node):
            with self.lock:
                self.result.skipped.append(node)
            return None
        args = t.get("arguments", {}).get("parameters", [])
        if "withParam" not in t:
            values = {p["name"]: _substitute(str(p["value"]), scope, node) for p in args}
            return self._invoke(t["template"], values, node)
        items = json.loads(_substitute(t["withParam"], scope, node))
        if not isinstance(items, list):
            raise ArgoError(f"{node}: withParam is not a JSON list: {items!r}")
        results: list[dict[str, str] | None] = [None] * len(items)
        errors: list[BaseException] = []

        def one(i: int, item: Any) -> None:
            local = dict(scope)
            local["item"] = item if isinstance(item, str) else json.dumps(item)
            values = {p["name"]: _substitute(str(p["value"]), local, node) for p in args}
            try:
                results[i] = self._invoke(t["template"], values, f"{node}({i})")
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [
            threading.Thread(target=one, args=(i, item), daemon=True)
            for i, item in enumerate(items)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        names = sorted({k for r in results for k in (r or {})})
        return {k: json.dumps([(r or {}).get(k) for r in results]) for k in names}

    # --- pods ----------------------------------------------------------------------

    def _pod(self, tpl: dict, scope: dict[str, str], node: str) -> dict[str, str]:
        retry = tpl.get("retryStrategy") or {}
        limit = int(retry.get("limit", 0)) if retry else 0
        backoff = retry.get("backoff") or {}
        delay, factor = _seconds(backoff.get("duration", "0")), int(backoff.get("factor", 1))
        attempt = 0
        while True:
            pod = self._attempt(tpl, scope, node, attempt)
            if pod.exit_code == 0 and pod.reason is None:
                return pod.outputs
            if attempt >= limit:
                raise _Failed(f"{node} failed: {pod.reason or f'exit code {pod.exit_code}'}")
            time.sleep(delay * factor**attempt)
            attempt += 1

    def _attempt(self, tpl: dict, scope: dict[str, str], node: str, attempt: int) -> PodRun:
        local = dict(scope)
        pod_name = f"{self.result.name}-{tpl['name']}-{uuid.uuid4().hex[:8]}"
        local.update({"retries": str(attempt), "pod.name": pod_name})
        container = tpl["container"]
        command = [_substitute(c, local, node) for c in container.get("command", [])]
        command += [_substitute(c, local, node) for c in container.get("args", [])]
        env = self._env(container, local, node, pod_name)
        pod = PodRun(node, tpl["name"], pod_name, attempt, command, env)
        with self.lock:
            self.result.pods.append(pod)
        with self.slots:
            workdir = Path(tempfile.mkdtemp(prefix="argo-pod-"))
            try:
                self._execute(pod, tpl, workdir)
                if pod.exit_code == 0 and pod.reason is None:
                    pod.outputs = self._outputs(tpl, container, workdir, node)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        return pod

    def _env(self, container: dict, scope: dict, node: str, pod_name: str) -> dict[str, str]:
        env = containers.image_env(self.python, self.node_env)
        for source in container.get("envFrom", []):
            name = source.get("secretRef", {}).get("name")
            if name not in self.secrets:
                raise _Failed(f'{node}: secret "{name}" not found')
            env.update(self.secrets[name])
        fields = {"metadata.name": pod_name, "metadata.namespace": self.namespace}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = _substitute(str(item["value"]), scope, node)
            else:
                path = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                if path not in fields:
                    raise ArgoError(f"{node}: env {item['name']} from unsupported {item}")
                env[item["name"]] = fields[path]
        return env

    def _execute(self, pod: PodRun, tpl: dict, workdir: Path) -> None:
        deadline = tpl.get("activeDeadlineSeconds")
        with open(self.log_dir / f"{pod.name}.log", "wb") as log:
            proc = containers.start(pod.command, pod.env, workdir, log)
            try:
                containers.wait(proc, timeout=float(deadline) if deadline else None)
            except subprocess.TimeoutExpired:
                pod.reason = "Pod was active on the node longer than the specified deadline"
                containers.stop(proc)
        pod.exit_code = proc.returncode

    def _outputs(self, tpl: dict, container: dict, workdir: Path, node: str) -> dict[str, str]:
        outs = {}
        base = container.get("workingDir", "").rstrip("/") + "/"
        for p in tpl.get("outputs", {}).get("parameters", []):
            path = p.get("valueFrom", {}).get("path")
            if path is None:
                raise ArgoError(f"{node}: output {p['name']} needs valueFrom.path")
            if base == "/" or not path.startswith(base):
                raise ArgoError(f"{node}: output path {path} is outside workingDir {base}")
            local = workdir / path[len(base) :]
            if local.exists():
                outs[p["name"]] = local.read_text()
            elif "default" in p["valueFrom"]:
                outs[p["name"]] = p["valueFrom"]["default"]
            else:
                raise _Failed(f"{node}: output parameter {p['name']}: {path} does not exist")
        return outs

    def log(self, pod: PodRun) -> str:
        return (self.log_dir / f"{pod.name}.log").read_text(errors="replace")


def _substitute(text: str, scope: dict[str, str], node: str) -> str:
    def one(m: re.Match) -> str:
        key = m.group(1)
        if key not in scope:
            raise ArgoError(f"{node}: unresolved reference {{{{{key}}}}}")
        return str(scope[key])

    return _REF.sub(one, text)


def _condition(text: str, node: str) -> bool:
    m = re.fullmatch(r"\s*(.+?)\s*(==|!=)\s*(.+?)\s*", text)
    if m is None:
        raise ArgoError(f"{node}: unsupported when expression {text!r}")
    left, op, right = (s.strip("'\"") for s in m.groups())
    return (left == right) if op == "==" else (left != right)


def _seconds(value: Any) -> float:
    text = str(value).strip()
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text or 0)
