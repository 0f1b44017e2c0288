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

import pickle
import struct
from dataclasses import dataclass

from ..exceptions import UnserializableArtifact

HEADER_MAGIC = b"MFLP"
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass
class Serialized:
    chunks: list[memoryview]
    size: int
    type_name: str
    encoding: str  # "pickle" or "cloudpickle"


def _type_name(obj: object) -> str:
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def serialize(obj: object, name: str = "artifact") -> Serialized:
    """Serialize ``obj``; raise ``UnserializableArtifact`` naming ``name`` on failure."""
    buffers: list[pickle.PickleBuffer] = []
    encoding = "pickle"
    try:
        payload = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    except Exception:
        buffers = []
        encoding = "cloudpickle"
        try:
            import cloudpickle

            payload = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
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
    return Serialized(chunks, sum(c.nbytes for c in chunks), _type_name(obj), encoding)


def parse_header(head: bytes) -> tuple[int, list[int]]:
    """Return (header length, [pickle length, buffer lengths...]) from the first bytes."""
    if head[:4] != HEADER_MAGIC:
        raise ValueError("not a metaflowlike artifact")
    (nbuf,) = _U32.unpack_from(head, 4)
    lengths = [_U64.unpack_from(head, 8 + 8 * i)[0] for i in range(nbuf + 1)]
    return 8 + 8 * (nbuf + 1), lengths


def deserialize(payload: bytes | memoryview, buffers: list) -> object:
    # cloudpickle output is plain pickle data: pickle.loads reads both.
    return pickle.loads(payload, buffers=buffers)
