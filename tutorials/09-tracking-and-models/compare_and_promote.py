"""Compare the training runs and point the `champion` alias at the best model."""

from metaflowlike import Flow, Model, list_models, namespace

namespace(None)
flow = Flow("TrainRegressor")
table = flow.compare(metrics=["loss"], params=["lr", "epochs"])
print(table.sort_values("metrics.loss").to_string())

best_run = table["metrics.loss"].idxmin()  # the table is indexed by run pathspec
versions = [Model("regressor", version=v) for v in list_models()["regressor"]]
best = next(m for m in versions if m.lineage["run"] == best_run.split("/")[1])
move = best.set_alias("champion")
print(f"champion -> regressor version {move.version} (from run {best_run})")

loss = flow[best_run.split("/")[1]]["fit"].task.metrics["loss"]
print(f"loss went from {loss.values[0]:.3f} to {loss.last:.4f} in {len(loss)} epochs")
