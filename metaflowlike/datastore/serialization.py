"""Turn an artifact into bytes (and back) without needless copies.

Objects are pickled with protocol 5 and *out-of-band buffers*: a numpy array's memory is
not copied into the pickle but handed over as a separate buffer, so serializing a 256 MB
array costs a few hundred bytes plus a view of its memory. Objects plain pickle cannot
handle (lambdas, classes defined in ``__main__`` of a notebook...) fall back to cloudpickle.

The *logical form* of an artifact, the bytes its content key is the hash of, is::

    b"MFLP" | u32 buffer count | u64 pickle length | u64 length of each buffer
    | pickle bytes | buffer 0 | buffer 1 | ...

``Serialized.chunks`` exposes that form as a list of memoryviews.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
import types
from dataclasses import dataclass

from ..exceptions import ArtifactLoadError, UnserializableArtifact

HEADER_MAGIC = b"MFLP"
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass
class Serialized:
    chunks: list[memoryview]
    size: int
    type_name: str


def _type_name(obj: object) -> str:
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def handle_kind(obj: object) -> str | None:
    """What kind of handle ``obj`` is (an open file, a socket, a lock...), or None.

    A handle stands for something outside the process (a file position, a connection,
    a lock held by a thread, a paused function); a pickled copy would silently be
    something else when loaded (cloudpickle turns an open file into a ``StringIO`` of
    its current contents), so handles are refused instead."""
    if isinstance(obj, (io.BytesIO, io.StringIO)):
        return None  # in-memory buffers are values
    if isinstance(obj, io.IOBase):
        return "an open file"
    if isinstance(obj, (types.GeneratorType, types.AsyncGeneratorType)):
        return "a generator"
    if isinstance(obj, types.CoroutineType):
        return "a coroutine"
    kinds = _handle_types()
    for kind, classes in kinds:
        if isinstance(obj, classes):
            return kind
    return None


def _handle_types() -> list[tuple[str, tuple[type, ...]]]:
    """Handle classes of the modules already imported (a handle of a module nobody
    imported cannot exist, so nothing is imported here)."""
    import _thread

    out: list[tuple[str, tuple[type, ...]]] = [("a lock", (_thread.LockType, _thread.RLock))]
    if "socket" in sys.modules:
        out.append(("a socket", (sys.modules["socket"].socket,)))
    if "mmap" in sys.modules:
        out.append(("a memory map", (sys.modules["mmap"].mmap,)))
    if "sqlite3" in sys.modules:
        out.append(("a database connection", (sys.modules["sqlite3"].Connection,)))
    if "subprocess" in sys.modules:
        out.append(("a running process", (sys.modules["subprocess"].Popen,)))
    if "selectors" in sys.modules:
        out.append(("a selector", (sys.modules["selectors"].BaseSelector,)))
    return out


class _RefusedHandle(Exception):
    def __init__(self, kind: str, obj: object) -> None:
        super().__init__(kind)
        self.kind, self.obj = kind, obj


def _cloudpickle(obj: object, buffers: list) -> bytes:
    """cloudpickle ``obj``, refusing any handle found anywhere inside it."""
    import cloudpickle

    class _Pickler(cloudpickle.Pickler):
        def reducer_override(self, value):
            kind = handle_kind(value)
            if kind is not None:
                raise _RefusedHandle(kind, value)
            return super().reducer_override(value)

    out = io.BytesIO()
    _Pickler(out, protocol=5, buffer_callback=buffers.append).dump(obj)
    return out.getvalue()


def serialize(obj: object, name: str = "artifact") -> Serialized:
    """Serialize ``obj``; raise ``UnserializableArtifact`` naming ``name`` on failure."""
    buffers: list[pickle.PickleBuffer] = []
    kind = handle_kind(obj)
    if kind is not None:
        raise _refused(name, obj, kind, obj)
    try:
        payload = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    except Exception:
        buffers = []
        try:
            payload = _cloudpickle(obj, buffers)
        except _RefusedHandle as e:
            raise _refused(name, obj, e.kind, e.obj) from None
        except Exception as e:
            raise UnserializableArtifact(
                f'Artifact "{name}" of type {_type_name(obj)} cannot be serialized: '
                f"{type(e).__name__}: {e}. Store something picklable instead, or use a "
                f"name starting with an underscore to keep it out of the datastore."
            ) from None
    views = [b.raw() for b in buffers]
    header = bytearray(HEADER_MAGIC)
    header += _U32.pack(len(views))
    header += _U64.pack(len(payload))
    for v in views:
        header += _U64.pack(v.nbytes)
    chunks = [memoryview(bytes(header)), memoryview(payload), *views]
    return Serialized(chunks, sum(c.nbytes for c in chunks), _type_name(obj))


def _refused(name: str, obj: object, kind: str, handle: object) -> UnserializableArtifact:
    where = "is" if handle is obj else f"({_type_name(obj)}) holds"
    return UnserializableArtifact(
        f'Artifact "{name}" {where} {kind} ({_type_name(handle)}), which cannot be stored: '
        f"a handle means nothing in another process. Store the data itself (e.g. the "
        f"file's contents or path), or use a name starting with an underscore to keep it "
        f"out of the datastore."
    )


def parse_header(head: bytes) -> tuple[int, list[int]]:
    """Return (header length, [pickle length, buffer lengths...]) from the first bytes."""
    if head[:4] != HEADER_MAGIC:
        raise ValueError("not a metaflowlike artifact")
    (nbuf,) = _U32.unpack_from(head, 4)
    lengths = [_U64.unpack_from(head, 8 + 8 * i)[0] for i in range(nbuf + 1)]
    return 8 + 8 * (nbuf + 1), lengths


def deserialize(payload: bytes | memoryview, buffers: list) -> object:
    """Unpickle an artifact; a failure (a module or class missing here...) raises
    ``ArtifactLoadError``, which the caller completes with the artifact's name."""
    # cloudpickle output is plain pickle data: pickle.loads reads both.
    try:
        return pickle.loads(payload, buffers=buffers)
    except Exception as e:
        raise ArtifactLoadError(f"{type(e).__name__}: {e}") from e
