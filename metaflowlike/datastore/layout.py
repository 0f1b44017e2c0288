"""Where everything lives in a datastore: the one place that knows its paths.

Every path under the datastore root is built here and nowhere else, so a change of
layout is one change, and a reader (the client, ``resume``, a UI, an exporter) cannot
drift from the writer. ``docs/datastore-layout.md`` describes the same tree::

    data/<k[:2]>/<key>                                   blobs (content_store)
    data/_damaged/<key>.<random>                         blobs found damaged, set aside
    data/<Flow>/<run_id>/...                             S3(run=...) keys of a run
    data/_gc/<key>                                       blobs gc set aside (datastore_gc)
    code/<sha256>.tar.gz                                 code packages
    code/<sha256>.environments.json                      a deployment's environment locks
    cache/<Flow>/<step>/<key>.json                       step cache index: key -> task
    gc/<stamp>.json                                      gc journal: blobs set aside
    models/<name>/versions/<n>.json                      model registry versions
    models/<name>/aliases/<alias>/<seq>.json             model alias moves
    flows/<Flow>/_tags.<run_id>.<ns>.<rand>.json         one tag operation
    flows/<Flow>/<run_id>/_claim.json                    the run id's claim
    flows/<Flow>/<run_id>/_run.json                      run record, written at start
    flows/<Flow>/<run_id>/_done.json                     run end record
    flows/<Flow>/<run_id>/_<plugin>.json                 a plugin's record of the run
    flows/<Flow>/<run_id>/<step>/<task_id>/
        <attempt>/task.json                              manifest + task facts
        <attempt>/stdout.log, stderr.log                 the attempt's logs
        <attempt>/metrics.json                           series tracked by the attempt
        <attempt>/cards/<type>[-<id>].html               cards made by the attempt
        <attempt>.done                                   completion marker, written last
        _checkpoints/<id>.json                           @checkpoint records
        _deployed_output.json                            a deployed task's output
        _cache.json                                      the task's step cache key

Paths are relative to the root and use ``/``; the storage backends map them to files
or object keys. A task is named by its pathspec ``Flow/run_id/step/task_id``.
"""

from __future__ import annotations

import re
import secrets
import time

DATA = "data"
DAMAGED = f"{DATA}/_damaged"
COLLECTED = f"{DATA}/_gc"
CODE = "code"
MODELS = "models"
FLOWS = "flows"
CACHE = "cache"
GC_JOURNAL = "gc"

_TAG_OP_PREFIX = "_tags."
#: a completion marker: ``<attempt>.done``; any other ``*.done`` is not one
_MARKER = re.compile(r"(0|[1-9][0-9]{0,5})\.done\Z")
#: an attempt folder: a plain attempt number
_ATTEMPT = re.compile(r"(0|[1-9][0-9]{0,5})\Z")
#: a folder of blobs: the first two hex digits of their keys
_BLOB_FOLDER = re.compile(r"[0-9a-f]{2}\Z")
#: a numbered registry record: ``<n>.json``
_NUMBERED = re.compile(r"([1-9][0-9]{0,8})\.json\Z")
_CARD_SUFFIX = ".html"
_CHECKPOINTS = "_checkpoints"


class Layout:
    """The path scheme of a datastore. Stateless: every method maps names to paths,
    or folder entries back to the names they encode."""

    # --- content ------------------------------------------------------------------

    @staticmethod
    def blob(key: str) -> str:
        return f"{DATA}/{key[:2]}/{key}"

    @staticmethod
    def damaged_blob(key: str, suffix: str) -> str:
        """Where a damaged blob is moved aside (``suffix`` keeps two apart)."""
        return f"{DAMAGED}/{key}.{suffix}"

    @staticmethod
    def collected_blob(key: str) -> str:
        """Where gc holds an unreferenced blob until no run can still need it."""
        return f"{COLLECTED}/{key}"

    @staticmethod
    def blob_folders() -> str:
        """The folder of the blob folders (``data/<k[:2]>``; ``_``-folders are not)."""
        return DATA

    @staticmethod
    def blob_folder(name: str) -> str | None:
        """The folder of blobs named ``name`` in :meth:`blob_folders`, or None for a
        folder of blobs set aside (``_damaged``, ``_gc``) or anything else (the objects
        ``S3(run=...)`` keeps under ``data/<Flow>``)."""
        return f"{DATA}/{name}" if _BLOB_FOLDER.match(name) else None

    @staticmethod
    def run_data(flow: str, run_id: str) -> str:
        """Where ``S3(run=...)`` keeps a run's own objects (Metaflow's place for them)."""
        return f"{DATA}/{flow}/{run_id}"

    @staticmethod
    def code_package(sha256: str) -> str:
        return f"{CODE}/{sha256}.tar.gz"

    @staticmethod
    def deployed_environments(sha256: str) -> str:
        """The locks of a deployment's steps, stored beside its code package."""
        return f"{CODE}/{sha256}.environments.json"

    # --- model registry -----------------------------------------------------------

    @staticmethod
    def models() -> str:
        return MODELS

    @staticmethod
    def model_versions(name: str) -> str:
        return f"{MODELS}/{name}/versions"

    @staticmethod
    def model_aliases(name: str) -> str:
        return f"{MODELS}/{name}/aliases"

    @staticmethod
    def alias_moves(name: str, alias: str) -> str:
        return f"{MODELS}/{name}/aliases/{alias}"

    @staticmethod
    def numbered(folder: str, number: int) -> str:
        """Record ``number`` of a numbered folder (model versions, alias moves)."""
        return f"{folder}/{number}.json"

    @staticmethod
    def numbers(entries: list[tuple[str, bool]]) -> list[int]:
        """The record numbers among a numbered folder's entries, ascending."""
        return sorted(
            int(m.group(1)) for n, is_dir in entries if not is_dir and (m := _NUMBERED.match(n))
        )

    # --- step cache and gc ---------------------------------------------------------

    @staticmethod
    def cache_dir(flow: str, step: str | None = None) -> str:
        return f"{CACHE}/{flow}" + (f"/{step}" if step else "")

    def cache_entry(self, flow: str, step: str, key: str) -> str:
        return f"{self.cache_dir(flow, step)}/{key}.json"

    def task_cache_key(self, pathspec: str) -> str:
        """What the step cache made of a task (``_``: never an attempt)."""
        return f"{self.task_dir(pathspec)}/_cache.json"

    @staticmethod
    def gc_journals() -> str:
        return GC_JOURNAL

    @staticmethod
    def new_gc_journal() -> str:
        """A fresh gc journal name; names sort in the order they were made."""
        return f"{GC_JOURNAL}/{time.time_ns() // 1000}-{secrets.token_hex(4)}.json"

    @staticmethod
    def gc_journal(name: str) -> str:
        return f"{GC_JOURNAL}/{name}.json"

    @staticmethod
    def is_record(path: str) -> bool:
        """Whether ``path`` is a JSON record (a ``.json`` file or a completion marker),
        rather than a log, a card or a blob."""
        return path.endswith(".json") or path.endswith(".done")

    @staticmethod
    def json_names(entries: list[tuple[str, bool]]) -> list[str]:
        """The names (without ``.json``) of the JSON records among a folder's entries."""
        return [n[:-5] for n, is_dir in entries if not is_dir and n.endswith(".json")]

    # --- flows and runs -----------------------------------------------------------

    @staticmethod
    def flows() -> str:
        return FLOWS

    @staticmethod
    def flow_dir(flow: str) -> str:
        return f"{FLOWS}/{flow}"

    @staticmethod
    def run_dir(flow: str, run_id: str) -> str:
        return f"{FLOWS}/{flow}/{run_id}"

    def run_claim(self, flow: str, run_id: str) -> str:
        return f"{self.run_dir(flow, run_id)}/_claim.json"

    def run_record(self, flow: str, run_id: str) -> str:
        return f"{self.run_dir(flow, run_id)}/_run.json"

    def run_end(self, flow: str, run_id: str) -> str:
        return f"{self.run_dir(flow, run_id)}/_done.json"

    def run_plugin_record(self, flow: str, run_id: str, plugin: str) -> str:
        """A plugin's own record of a run (``_mlflow.json``): never a step name,
        which cannot start with ``_``."""
        return f"{self.run_dir(flow, run_id)}/_{plugin}.json"

    def step_dir(self, flow: str, run_id: str, step: str) -> str:
        return f"{self.run_dir(flow, run_id)}/{step}"

    # --- tag operations -----------------------------------------------------------

    def new_tag_operation(self, flow: str, run_id: str) -> str:
        """A fresh, never reused name for one tag operation on ``run_id``: its time
        first, so that the names sort in the order the operations were made."""
        name = f"{_TAG_OP_PREFIX}{run_id}.{time.time_ns():020d}.{secrets.token_hex(6)}.json"
        return f"{self.flow_dir(flow)}/{name}"

    def tag_operations(self, flow: str, entries: list[tuple[str, bool]]) -> dict[str, list[str]]:
        """The tag operations among the flow folder's entries: their paths by run id,
        oldest first."""
        ops: dict[str, list[str]] = {}
        for name, is_dir in sorted(entries):
            if is_dir or not name.startswith(_TAG_OP_PREFIX) or not name.endswith(".json"):
                continue
            run_id = name[len(_TAG_OP_PREFIX) :].split(".", 1)[0]
            ops.setdefault(run_id, []).append(f"{self.flow_dir(flow)}/{name}")
        return ops

    # --- tasks and attempts -------------------------------------------------------

    @staticmethod
    def task_dir(pathspec: str) -> str:
        """The folder of the task ``Flow/run_id/step/task_id``."""
        return f"{FLOWS}/{pathspec}"

    def attempt_dir(self, pathspec: str, attempt: int) -> str:
        return f"{self.task_dir(pathspec)}/{attempt}"

    def task_record(self, pathspec: str, attempt: int) -> str:
        return f"{self.attempt_dir(pathspec, attempt)}/task.json"

    def done_marker(self, pathspec: str, attempt: int) -> str:
        return f"{self.task_dir(pathspec)}/{attempt}.done"

    def log(self, pathspec: str, attempt: int, stream: str) -> str:
        return f"{self.attempt_dir(pathspec, attempt)}/{stream}.log"

    def metrics(self, pathspec: str, attempt: int) -> str:
        return f"{self.attempt_dir(pathspec, attempt)}/metrics.json"

    def cards_dir(self, pathspec: str, attempt: int) -> str:
        return f"{self.attempt_dir(pathspec, attempt)}/cards"

    @staticmethod
    def card_file(card_type: str, card_id: str | None) -> str:
        name = f"{card_type}-{card_id}" if card_id else card_type
        return f"{name}{_CARD_SUFFIX}"

    def card(self, pathspec: str, attempt: int, card_type: str, card_id: str | None) -> str:
        return f"{self.cards_dir(pathspec, attempt)}/{self.card_file(card_type, card_id)}"

    @staticmethod
    def cards(entries: list[tuple[str, bool]]) -> list[tuple[str, str | None]]:
        """``(type, id)`` of the cards among a cards folder's entries, by file name."""
        out = []
        for name, is_dir in sorted(entries):
            if is_dir or not name.endswith(_CARD_SUFFIX):
                continue
            card_type, _, card_id = name[: -len(_CARD_SUFFIX)].partition("-")
            out.append((card_type, card_id or None))
        return out

    @staticmethod
    def finished_attempts(entries: list[tuple[str, bool]]) -> list[int]:
        """Attempt numbers of the completion markers among a task folder's entries."""
        return sorted(int(n[:-5]) for n, is_dir in entries if not is_dir and _MARKER.match(n))

    @staticmethod
    def started_attempts(entries: list[tuple[str, bool]]) -> list[int]:
        """Attempt numbers of the attempt folders among a task folder's entries
        (finished or still running)."""
        return sorted(int(n) for n, is_dir in entries if is_dir and _ATTEMPT.match(n))

    def deployed_output(self, pathspec: str) -> str:
        """What a task run by an orchestrator tells it (its splits, the step a switch
        chose): beside the task; the leading ``_`` keeps it apart from attempts."""
        return f"{self.task_dir(pathspec)}/_deployed_output.json"

    def checkpoints_dir(self, pathspec: str) -> str:
        return f"{self.task_dir(pathspec)}/{_CHECKPOINTS}"

    def checkpoint(self, pathspec: str, ckpt_id: str) -> str:
        return f"{self.checkpoints_dir(pathspec)}/{ckpt_id}.json"

    def checkpoints(self, pathspec: str, entries: list[tuple[str, bool]]) -> list[tuple[str, str]]:
        """``(id, path)`` of the checkpoint records among the folder's entries."""
        return [
            (name[:-5], self.checkpoint(pathspec, name[:-5]))
            for name, is_dir in entries
            if not is_dir and name.endswith(".json")
        ]


LAYOUT = Layout()
