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
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from tests.argo_interpreter import Interpreter  # noqa: E402
from tests.cloud_servers import (  # noqa: E402
    AWS_KEY_ID,
    AWS_SECRET,
    create_bucket,
    new_bucket_name,
    start_moto,
)
from tests.remote_env import make_sdk_python, start_kube_stand_in  # noqa: E402

ARGO = "/apis/argoproj.io/v1alpha1/namespaces/default"


def flow(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, str(HERE / "forecast.py"), *args],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
    )
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
    work = Path(tempfile.mkdtemp(prefix="mfl-production-"))
    print("Preparing a Python with boto3 only (what a container image would have)...")
    sdk_python = make_sdk_python(work / "image-python")
    with start_moto() as s3:
        bucket = new_bucket_name()
        create_bucket("s3", s3.url, bucket)
        cluster = start_kube_stand_in(sdk_python, s3.url, work)
        try:
            root = f"s3://{bucket}/flows"
            env = dict(os.environ)
            env.pop("METAFLOWLIKE_DATASTORE", None)
            env.update(
                {
                    "KUBECONFIG": str(cluster.kubeconfig),
                    "METAFLOWLIKE_DATASTORE_ROOT": root,
                    "METAFLOWLIKE_USER": "tutorial",
                    "AWS_ENDPOINT_URL": s3.url,
                    "AWS_ACCESS_KEY_ID": "laptop-key",
                    "AWS_SECRET_ACCESS_KEY": "laptop-secret",
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
            )
            print(f"Stand-in cluster at {cluster.server.url}, datastore {root}\n")
            print("$ python forecast.py argo-workflows create")
            flow("argo-workflows", "create", env=env)
            print("\n$ python forecast.py argo-workflows trigger --horizon 3")
            id_file = work / "run-id"
            flow(
                "argo-workflows",
                "trigger",
                "--horizon",
                "3",
                "--run-id-file",
                str(id_file),
                env=env,
            )
            name = id_file.read_text().removeprefix("argo-")

            print("\nThe Argo controller's part, played by the test suite's interpreter:")
            workflow = cluster.api.call("GET", f"{ARGO}/workflows/{name}")
            template_name = workflow["spec"]["workflowTemplateRef"]["name"]
            template = cluster.api.call("GET", f"{ARGO}/workflowtemplates/{template_name}")
            node_env = {
                "AWS_ENDPOINT_URL": s3.url,
                "AWS_ACCESS_KEY_ID": AWS_KEY_ID,  # the cluster's own identity
                "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            result = Interpreter(python=sdk_python, log_dir=work / "pods", node_env=node_env).run(
                workflow, {template_name: template}
            )
            for pod in result.pods:
                print(f"  pod {pod.node} (attempt {pod.attempt}): exit code {pod.exit_code}")
            print(f"Workflow {name}: {result.phase}\n")

            print("$ python forecast.py step-functions create --only-json")
            sfn_env = dict(env, METAFLOWLIKE_BATCH_JOB_QUEUE="ml-queue")
            definition = json.loads(
                subprocess.run(
                    [sys.executable, str(HERE / "forecast.py"), "step-functions", "create",
                     "--only-json"],
                    env=sfn_env, cwd=HERE, capture_output=True, text=True, check=True,
                ).stdout
            )  # fmt: skip
            print("The same flow as a state machine, states:", ", ".join(definition["States"]))
            print()
            print("$ jupyter: production_run.ipynb")
            os.environ.update(env)  # the notebook's kernel reads the same datastore
            run_notebook(HERE / "production_run.ipynb")
            return 0 if result.phase == "Succeeded" else 1
        finally:
            cluster.server.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
