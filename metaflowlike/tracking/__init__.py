"""Experiment tracking: metric series recorded from step code and read back by the client.

``current.track`` appends to an in-process buffer (:mod:`.metrics`); the task stores the
buffer once, next to its artifact manifest, so tracking costs no I/O per call. The
client reads the series back (:mod:`.series`) and lays runs side by side
(:mod:`.compare`).
"""
