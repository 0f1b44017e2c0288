"""Content-addressed blobs: the only layer that knows about hashes and compression.

An artifact is stored once under ``data/<key[:2]>/<key>``. Its logical bytes (see
``serialization``) are cut into *pieces* of at most 4 MiB, no piece crossing a chunk
(header, pickle, each out-of-band buffer); the key is the SHA-256 of the concatenated
SHA-256 digests of the pieces. Hashing pieces separately lets large artifacts be
hashed on several cores (hashlib releases the GIL), and the key still changes with any
byte. Saving something that already exists costs one hash and one existence check;
nothing is rewritten, whichever run, step or task produced it.

A blob is ``MFLB\\x01`` then one frame per piece,
``u8 codec | u32 raw length | u32 stored length | data``. A frame is zlib-compressed
(level 1) only when a 64 KiB sample of it compresses well, so random numbers and
already compressed data are stored raw instead of burning CPU for nothing. Frames let
both directions stream: writing never concatenates the artifact, reading fills the
final buffers directly (``readinto`` for raw frames) and checks the key.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..exceptions import CorruptArtifact
from . import serialization
from .storage import Storage

BLOB_MAGIC = b"MFLB\x01"
FRAME = struct.Struct("<BII")
PIECE_SIZE = 4 << 20
SMALL_BLOB = 1 << 20
PARALLEL_HASH_FROM = 16 << 20
RAW, ZLIB = 0, 1
DATA_PREFIX = "data"

_hash_pool: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    size: int
    type: str
    new: bool = False  # True if this save wrote new bytes


def blob_path(key: str) -> str:
    return f"{DATA_PREFIX}/{key[:2]}/{key}"


def pieces(chunks: Iterable[memoryview]) -> list[memoryview]:
    """Cut logical chunks into pieces of at most PIECE_SIZE, none crossing a chunk."""
    out = []
    for chunk in chunks:
        chunk = chunk.cast("B") if chunk.format != "B" or chunk.ndim != 1 else chunk
        out.extend(chunk[i : i + PIECE_SIZE] for i in range(0, chunk.nbytes, PIECE_SIZE))
    return out


def _digest(piece: memoryview) -> bytes:
    return hashlib.sha256(piece).digest()


def content_key(parts: Sequence[memoryview]) -> str:
    """The content key of logical bytes already cut into ``pieces``."""
    global _hash_pool
    if sum(p.nbytes for p in parts) >= PARALLEL_HASH_FROM:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
        digests = list(_hash_pool.map(_digest, parts))
    else:
        digests = [_digest(p) for p in parts]
    return hashlib.sha256(b"".join(digests)).hexdigest()


def key_of_bytes(data: bytes) -> str:
    return content_key(pieces([memoryview(data)]))


def _frames(parts: Iterable[memoryview]) -> Iterator[bytes | memoryview]:
    """Yield the encoded frames, one per piece."""
    for piece in parts:
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
            parts = pieces(ser.chunks)
            prepared.append((name, ser, parts, content_key(parts)))
        keys = sorted({key for *_, key in prepared})
        present = dict(zip(keys, self.storage.exists_many([blob_path(k) for k in keys])))
        to_write: dict[str, tuple] = {}
        for _, ser, parts, key in prepared:
            if not present[key]:
                to_write.setdefault(key, (parts, ser.size))
        self.storage._map(lambda kv: self._write(kv[0], *kv[1]), list(to_write.items()))
        return {
            name: StoredArtifact(key, ser.size, ser.type_name, key in to_write)
            for name, ser, _, key in prepared
        }

    def _write(self, key: str, parts: list[memoryview], size: int) -> None:
        path = blob_path(key)
        if size <= SMALL_BLOB:
            blob = b"".join([BLOB_MAGIC, *(bytes(f) for f in _frames(parts))])
            self.storage.put_bytes(path, blob, overwrite=False)
            return
        fd, tmp = tempfile.mkstemp(dir=self.storage.spool_dir(), prefix=".tmp-blob-")
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                f.write(BLOB_MAGIC)
                for frame in _frames(parts):
                    f.write(frame)
            self.storage.put_file(path, tmp, overwrite=False)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def save_file(self, local_path: str) -> tuple[str, int]:
        """Store a local file's bytes content-addressed; return (key, size).

        The file is memory-mapped, so even a multi-GB checkpoint costs no copy."""
        import mmap

        size = os.path.getsize(local_path)
        if size == 0:
            return self.save_bytes_blob(b""), 0
        with open(local_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            parts = pieces([view])
            try:
                key = content_key(parts)
                if not self.storage.exists(blob_path(key)):
                    self._write(key, parts, size)
            finally:
                for p in parts:
                    p.release()
                view.release()
        return key, size

    def save_bytes_blob(self, data: bytes) -> str:
        """Store raw bytes (not a pickled object) content-addressed; return the key."""
        parts = pieces([memoryview(data)])
        key = content_key(parts)
        if not self.storage.exists(blob_path(key)):
            self._write(key, parts, len(data))
        return key

    # --- reading -----------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.storage.exists(blob_path(key))

    def load(self, key: str) -> object:
        """Load and unpickle the artifact stored under ``key``."""
        with self._reader(key) as reader:
            payload, buffers = reader.read_artifact()
        return serialization.deserialize(payload, buffers)

    def load_raw(self, key: str) -> bytes:
        """The logical bytes of ``key`` (for raw blobs saved with save_bytes_blob)."""
        with self._reader(key) as reader:
            return bytes(reader.read_all())

    def load_file(self, key: str, local_path: str) -> None:
        """Write the raw blob ``key`` into ``local_path`` (atomically, streaming)."""
        tmp = local_path + ".tmp-restore"
        try:
            with self._reader(key) as reader, open(tmp, "wb") as out:
                reader.copy_to(out)
            os.replace(tmp, local_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _reader(self, key: str) -> _FrameReader:
        path = blob_path(key)
        where = self.storage.url(path)
        missing = CorruptArtifact(f"Artifact blob {key} is missing from {where}.")
        local = self.storage.local_path(path)
        if local is not None:
            try:
                return _FrameReader(open(local, "rb"), key, where, None)
            except FileNotFoundError:
                raise missing from None
        fd, tmp = tempfile.mkstemp(prefix=".tmp-get-")
        os.close(fd)
        try:
            self.storage.get_file(path, tmp)
        except FileNotFoundError:
            os.unlink(tmp)
            raise missing from None
        return _FrameReader(open(tmp, "rb"), key, where, tmp)


class _FrameReader:
    """Reads a blob frame by frame into caller buffers, then checks the content key.

    Frames never cross a logical chunk, so each one lands in a single contiguous slice
    of a destination buffer; those slices are hashed (in parallel when large) once all
    frames are in."""

    def __init__(self, f, key: str, where: str, tmp: str | None) -> None:
        self.f, self.key, self.where, self.tmp = f, key, where, tmp
        self.parts: list[memoryview] = []  # what each frame filled, for the key check
        if f.read(len(BLOB_MAGIC)) != BLOB_MAGIC:
            self.close()
            raise self.corrupt("unknown format")

    def __enter__(self) -> _FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.f.close()
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def corrupt(self, why: str) -> CorruptArtifact:
        return CorruptArtifact(f"Artifact blob {self.key} at {self.where} is corrupt: {why}.")

    def _frame_header(self) -> tuple[int, int, int] | None:
        head = self.f.read(FRAME.size)
        if not head:
            return None
        if len(head) != FRAME.size:
            raise self.corrupt("truncated frame header")
        codec, raw_len, stored_len = FRAME.unpack(head)
        if codec not in (RAW, ZLIB) or raw_len > PIECE_SIZE:
            raise self.corrupt("bad frame header")
        return codec, raw_len, stored_len

    def _frame_into(self, codec: int, raw_len: int, stored_len: int, target: memoryview) -> None:
        if codec == RAW:
            if stored_len != raw_len or self.f.readinto(target) != raw_len:
                raise self.corrupt("truncated data")
        else:
            try:
                data = zlib.decompress(self.f.read(stored_len))
            except zlib.error as e:
                raise self.corrupt(str(e)) from None
            if len(data) != raw_len:
                raise self.corrupt("frame length mismatch")
            target[:] = data
        self.parts.append(target)

    def _fill(self, dest: bytearray) -> None:
        view, off = memoryview(dest), 0
        while off < len(dest):
            header = self._frame_header()
            if header is None:
                raise self.corrupt("truncated data")
            codec, raw_len, stored_len = header
            if raw_len == 0 or off + raw_len > len(dest):
                raise self.corrupt("frames do not match the artifact's layout")
            self._frame_into(codec, raw_len, stored_len, view[off : off + raw_len])
            off += raw_len

    def read_artifact(self) -> tuple[bytearray, list[bytearray]]:
        header = self._frame_header()
        if header is None:
            raise self.corrupt("empty blob")
        head = bytearray(header[1])
        self._frame_into(*header, memoryview(head))
        try:
            hlen, lengths = serialization.parse_header(bytes(head))
        except Exception:
            raise self.corrupt("bad artifact header") from None
        if hlen != len(head):
            raise self.corrupt("bad artifact header")
        dests = [bytearray(n) for n in lengths]
        for dest in dests:
            self._fill(dest)
        self._finish()
        return dests[0], dests[1:]

    def read_all(self) -> bytearray:
        out = bytearray()
        while (header := self._frame_header()) is not None:
            buf = bytearray(header[1])
            self._frame_into(*header, memoryview(buf))
            out += buf
        self._finish()
        return out

    def copy_to(self, out) -> None:
        digests = []
        while (header := self._frame_header()) is not None:
            buf = bytearray(header[1])
            self._frame_into(*header, memoryview(buf))
            digests.append(_digest(self.parts.pop()))
            out.write(buf)
        if hashlib.sha256(b"".join(digests)).hexdigest() != self.key:
            raise self.corrupt("its bytes do not match its content key")

    def _finish(self) -> None:
        if self._frame_header() is not None:
            raise self.corrupt("more data than its header announces")
        if content_key(self.parts) != self.key:
            raise self.corrupt("its bytes do not match its content key")
