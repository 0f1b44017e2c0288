"""What you would type in a notebook cell to look at the latest TrainFlow run.

Run `python train.py run` first, in this folder (the client reads ./.metaflowlike, or
METAFLOWLIKE_DATASTORE_ROOT).
"""

from metaflowlike import Flow, namespace

namespace(None)  # see everyone's runs, not only yours

run = Flow("TrainFlow").latest_run
print(f"run {run.pathspec}: successful={run.successful}, created {run.created_at:%Y-%m-%d %H:%M}")

# Artifacts of `end` are available directly on the run...
print("best model:", run.data.model)

# ...and every task's artifacts and logs are one lookup away.
for task in run["fit"]:
    print(
        f"  {task.pathspec}: index={task.index} noise={task.data.model['noise']} "
        f"a={task.data.model['a']:.3f}"
    )
    print("    stdout:", task.stdout.strip())

print("parameter points =", run["start"].task.data.points)
