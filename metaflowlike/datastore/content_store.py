"""Content-addressed blobs: the only layer that knows about hashes and compression.

An artifact is stored once under ``data/<key[:2]>/<key>``, where ``key`` is the SHA-256
of its logical bytes (see ``serialization``). Saving something that already exists
costs one hash and one existence check; nothing is rewritten, whichever run, step or
task produced it.

A blob is a sequence of frames, ``u8 codec | u32 raw length | u32 stored length | data``,
each holding at most 4 MiB of one logical chunk. A frame is zlib-compressed (level 1)
only when a 64 KiB sample of it compresses well, so random numbers and already
compressed data are stored raw instead of burning CPU for nothing. Frames let both
directions stream: writing never concatenates the artifact, reading fills the final
buffers directly (``readinto`` for raw frames) and checks the hash on the way.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..exceptions import CorruptArtifact
from . import serialization
from .storage import Storage

BLOB_MAGIC = b"MFLB\x01"
FRAME = struct.Struct("<BII")
FRAME_SIZE = 4 << 20
SMALL_BLOB = 1 << 20
RAW, ZLIB = 0, 1
DATA_PREFIX = "data"


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    size: int
    type: str
    new: bool = False  # True if this save wrote new bytes


def blob_path(key: str) -> str:
    return f"{DATA_PREFIX}/{key[:2]}/{key}"


def _frames(chunks: Iterable[memoryview]) -> Iterable[bytes | memoryview]:
    """Yield the encoded frames of ``chunks`` (no frame crosses a chunk)."""
    for chunk in chunks:
        chunk = chunk.cast("B")
        for start in range(0, chunk.nbytes, FRAME_SIZE):
            piece = chunk[start : start + FRAME_SIZE]
            codec, stored = RAW, piece
            if piece.nbytes >= 512:
                sample = piece[: 64 << 10]
                if len(zlib.compress(sample, 1)) < 0.8 * sample.nbytes:
                    packed = zlib.compress(piece, 1)
                    if len(packed) < piece.nbytes:
                        codec, stored = ZLIB, packed
            yield FRAME.pack(codec, piece.nbytes, len(stored))
            yield stored


class ContentStore:
    """Save and load serialized artifacts by content key on one ``Storage``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # --- writing -----------------------------------------------------------------

    def save(self, items: Sequence[tuple[str, object]]) -> dict[str, StoredArtifact]:
        """Serialize and store ``(name, object)`` pairs; return name -> StoredArtifact."""
        prepared = []
        for name, obj in items:
            ser = serialization.serialize(obj, name)
            digest = hashlib.sha256()
            for c in ser.chunks:
                digest.update(c)
            prepared.append((name, ser, digest.hexdigest()))
        return self.save_serialized(prepared)

    def save_serialized(self, prepared) -> dict[str, StoredArtifact]:
        keys = sorted({key for _, _, key in prepared})
        present = dict(zip(keys, self.storage.exists_many([blob_path(k) for k in keys])))
        to_write = {}
        for _, ser, key in prepared:
            if not present[key]:
                to_write.setdefault(key, ser)
        self.storage._map(
            lambda kv: self._write(kv[0], kv[1].chunks, kv[1].size), list(to_write.items())
        )
        return {
            name: StoredArtifact(key, ser.size, ser.type_name, key in to_write)
            for name, ser, key in prepared
        }

    def _write(self, key: str, chunks: list[memoryview], size: int) -> None:
        path = blob_path(key)
        if size <= SMALL_BLOB:
            blob = b"".join([BLOB_MAGIC, *(bytes(f) for f in _frames(chunks))])
            self.storage.put_bytes(path, blob, overwrite=False)
            return
        fd, tmp = tempfile.mkstemp(dir=self.storage.spool_dir(), prefix=".tmp-blob-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(BLOB_MAGIC)
                for frame in _frames(chunks):
                    f.write(frame)
            self.storage.put_file(path, tmp, overwrite=False)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def save_file(self, local_path: str) -> tuple[str, int]:
        """Store a local file's bytes content-addressed, streaming; return (key, size).

        The file is memory-mapped, so even a multi-GB checkpoint costs no copy."""
        import mmap

        size = os.path.getsize(local_path)
        if size == 0:
            return self.save_bytes_blob(b""), 0
        with open(local_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            try:
                key = hashlib.sha256(view).hexdigest()
                if not self.storage.exists(blob_path(key)):
                    self._write(key, [view], size)
            finally:
                view.release()
        return key, size

    def load_file(self, key: str, local_path: str) -> None:
        """Write the raw blob ``key`` into ``local_path`` (atomically)."""
        data = self._read_logical(key, split=False)
        tmp = local_path + ".tmp-restore"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, local_path)

    def save_bytes_blob(self, data: bytes) -> str:
        """Store raw bytes (not a pickled object) content-addressed; return the key."""
        key = hashlib.sha256(data).hexdigest()
        if not self.storage.exists(blob_path(key)):
            self._write(key, [memoryview(data)], len(data))
        return key

    # --- reading -----------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.storage.exists(blob_path(key))

    def load(self, key: str) -> object:
        """Load and unpickle the artifact stored under ``key``."""
        payload, buffers = self._read_logical(key, split=True)
        return serialization.deserialize(payload, buffers)

    def load_raw(self, key: str) -> bytes:
        """The logical bytes of ``key`` (for raw blobs saved with save_bytes_blob)."""
        return bytes(self._read_logical(key, split=False))

    def _open(self, key: str):
        path = blob_path(key)
        local = self.storage.local_path(path)
        if local is not None:
            try:
                return open(local, "rb"), None
            except FileNotFoundError:
                raise CorruptArtifact(
                    f"Artifact blob {key} is missing from {self.storage.url(path)}."
                ) from None
        fd, tmp = tempfile.mkstemp(prefix=".tmp-get-")
        os.close(fd)
        try:
            self.storage.get_file(path, tmp)
        except FileNotFoundError:
            os.unlink(tmp)
            raise CorruptArtifact(
                f"Artifact blob {key} is missing from {self.storage.url(path)}."
            ) from None
        return open(tmp, "rb"), tmp

    def _read_logical(self, key: str, split: bool):
        f, tmp = self._open(key)
        try:
            with f:
                reader = _FrameReader(f, key, self.storage.url(blob_path(key)))
                if split:
                    result = reader.read_artifact()
                else:
                    result = reader.read_all()
                reader.finish()
                return result
        finally:
            if tmp:
                os.unlink(tmp)


class _FrameReader:
    """Reads the logical bytes of a blob frame by frame, hashing as it goes.

    ``readinto`` fills caller-owned buffers directly; raw frames are read straight from
    the file into them, so loading a large array needs no intermediate copy."""

    def __init__(self, f, key: str, where: str) -> None:
        self.f, self.key, self.where = f, key, where
        self.digest = hashlib.sha256()
        self.left = 0  # logical bytes left in the current frame
        self.codec = RAW
        self.buf = memoryview(b"")  # decompressed current frame (zlib frames)
        self.pos = 0
        if f.read(len(BLOB_MAGIC)) != BLOB_MAGIC:
            raise self.corrupt("unknown format")

    def corrupt(self, why: str) -> CorruptArtifact:
        return CorruptArtifact(f"Artifact blob {self.key} at {self.where} is corrupt: {why}.")

    def _next_frame(self) -> bool:
        head = self.f.read(FRAME.size)
        if not head:
            return False
        if len(head) != FRAME.size:
            raise self.corrupt("truncated frame header")
        self.codec, self.left, stored = FRAME.unpack(head)
        if self.codec == ZLIB:
            try:
                self.buf = memoryview(zlib.decompress(self.f.read(stored)))
            except zlib.error as e:
                raise self.corrupt(str(e)) from None
            if self.buf.nbytes != self.left:
                raise self.corrupt("frame length mismatch")
            self.pos = 0
        elif self.codec != RAW:
            raise self.corrupt(f"unknown codec {self.codec}")
        return True

    def readinto(self, view: memoryview) -> int:
        done = 0
        while done < view.nbytes:
            if self.left == 0 and not self._next_frame():
                break
            k = min(self.left, view.nbytes - done)
            target = view[done : done + k]
            if self.codec == RAW:
                if self.f.readinto(target) != k:
                    raise self.corrupt("truncated data")
            else:
                target[:] = self.buf[self.pos : self.pos + k]
                self.pos += k
            self.digest.update(target)
            self.left -= k
            done += k
        return done

    def read_exact(self, n: int) -> bytearray:
        out = bytearray(n)
        if self.readinto(memoryview(out)) != n:
            raise self.corrupt("truncated data")
        return out

    def read_artifact(self):
        head = self.read_exact(12)
        rest = self.read_exact(serialization.header_size_hint(bytes(head)) - 12)
        _, lengths = serialization.parse_header(bytes(head + rest))
        payload = self.read_exact(lengths[0])
        return payload, [self.read_exact(n) for n in lengths[1:]]

    def read_all(self) -> bytearray:
        out = bytearray()
        while self.left or self._next_frame():
            out += self.read_exact(self.left)
        return out

    def finish(self) -> None:
        if self.left or self._next_frame():
            raise self.corrupt("more data than its header announces")
        if self.digest.hexdigest() != self.key:
            raise self.corrupt("its bytes do not match its content key")
