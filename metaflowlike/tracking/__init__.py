"""Experiment tracking and models: what teams otherwise pair an orchestrator with
MLflow for.

``current.track`` appends to an in-process buffer (:mod:`.metrics`); the task stores the
buffer once, next to its artifact manifest, so tracking costs no I/O per call. The
client reads the series back (:mod:`.series`) and lays runs side by side
(:mod:`.compare`). The model registry keeps numbered versions and aliases in the
datastore (:mod:`.registry`), saved from steps and loaded anywhere (:mod:`.model`).
"""
