"""Deploy forecast.py to Argo Workflows on this laptop, run it, read it from a notebook.

    python tutorials/06-production/try_on_stand_in.py

It starts what the test suite uses in place of the cloud (from a checkout installed
with ``pip install -e ".[dev]"``): S3 served by moto and kmock's Kubernetes API server,
which stores Argo's objects but runs nothing. Then:

1. ``forecast.py argo-workflows create`` and ``trigger --horizon 3``, exactly as against
   a real cluster;
2. the test suite's Argo interpreter plays the Argo controller: it reads the Workflow
   back from the API server and runs each pod's command with a Python that has boto3
   but not metaflowlike, in an empty folder, with only the pod's environment;
3. ``step-functions create --only-json`` prints the same flow as a state machine;
4. ``production_run.ipynb`` reads the production run with the client, as you would in
   Jupyter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.argo_interpreter import Interpreter  # noqa: E402
from tests.remote_env import node_credentials  # noqa: E402
from tests.stand_in_cloud import stand_in_cloud  # noqa: E402

ARGO = "/apis/argoproj.io/v1alpha1/namespaces/default"


def flow(*args: str, env: dict[str, str], echo: bool = True) -> str:
    """``python forecast.py *args``; its output (printed too, if ``echo``)."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "forecast.py"), *args],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
    )
    if echo:
        print(proc.stdout, end="")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(proc.returncode)
    return proc.stdout


def run_notebook(path: Path) -> None:
    """Execute the notebook and print what its cells print."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                print(out["text"], end="")
            elif out.get("output_type") == "error":
                raise SystemExit("\n".join(out["traceback"]))


def main() -> int:
    with stand_in_cloud("flows") as cloud:
        cluster = cloud.kubernetes()
        env = cloud.laptop_env(
            {"KUBECONFIG": str(cluster.kubeconfig), "METAFLOWLIKE_USER": "tutorial"}
        )
        print(f"Stand-in cluster at {cluster.server.url}, datastore {cloud.root}\n")
        print("$ python forecast.py argo-workflows create")
        flow("argo-workflows", "create", env=env)
        print("\n$ python forecast.py argo-workflows trigger --horizon 3")
        id_file = cloud.work / "run-id"
        flow("argo-workflows", "trigger", "--horizon", "3", "--run-id-file", str(id_file), env=env)
        name = id_file.read_text().removeprefix("argo-")

        print("\nThe Argo controller's part, played by the test suite's interpreter:")
        workflow = cluster.api.call("GET", f"{ARGO}/workflows/{name}")
        template_name = workflow["spec"]["workflowTemplateRef"]["name"]
        template = cluster.api.call("GET", f"{ARGO}/workflowtemplates/{template_name}")
        node_env = node_credentials(cloud.s3.url)  # the cluster's own identity
        interpreter = Interpreter(
            python=cloud.sdk_python, log_dir=cloud.work / "pods", node_env=node_env
        )
        result = interpreter.run(workflow, {template_name: template})
        for pod in result.pods:
            print(f"  pod {pod.node} (attempt {pod.attempt}): exit code {pod.exit_code}")
        print(f"Workflow {name}: {result.phase}\n")

        print("$ python forecast.py step-functions create --only-json")
        sfn_env = dict(env, METAFLOWLIKE_BATCH_JOB_QUEUE="ml-queue")
        definition = json.loads(
            flow("step-functions", "create", "--only-json", env=sfn_env, echo=False)
        )
        print("The same flow as a state machine, states:", ", ".join(definition["States"]))
        print()
        print("$ jupyter: production_run.ipynb")
        os.environ.update(env)  # the notebook's kernel reads the same datastore
        run_notebook(HERE / "production_run.ipynb")
        return 0 if result.phase == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
