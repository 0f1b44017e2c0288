"""Print the exact versions each step of the latest run used (saved with the run)."""

from metaflowlike import Flow

run = Flow("DependenciesFlow").latest_run
print(f"Run {run.pathspec}")
for step in run:
    env = step.task.environment
    if env is None:
        print(f"  {step.id}: the flow's own interpreter")
        continue
    pins = ", ".join(f"{name}=={version}" for name, version in env["packages"].items())
    print(
        f"  {step.id}: {env['type']} environment {env['key'][:12]}, Python {env['python']}: {pins}"
    )
