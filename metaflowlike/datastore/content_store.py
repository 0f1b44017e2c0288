"""Content-addressed blobs: the only layer that knows about hashes and compression.

An artifact is stored once under ``data/<key[:2]>/<key>``. Its logical bytes (see
``serialization``) are a list of *chunks* (header, pickle, each out-of-band buffer),
each cut into *pieces* of at most 4 MiB. The key is the SHA-256 of the concatenated
SHA-256 digests of the pieces: any changed byte changes it, and large artifacts hash on
several cores (hashlib releases the GIL). Saving something that already exists costs
one hash and one existence check; nothing is rewritten, whichever run, step or task
produced it.

On disk a blob is ``MFLB\\x02`` followed by frames:

* ``z | u32 raw length | u32 stored length | data``: one zlib-compressed (level 1)
  piece, used when a 16 KiB sample of the piece compresses well (zlib is about 10x
  slower per byte on a 64 KiB sample of incompressible data than on a 16 KiB one, and
  sampling was then the largest cost of saving a large array beyond hashing and
  writing it);
* ``r | u64 length | u8 pad | pad bytes | data``: consecutive raw pieces of one chunk,
  the data aligned to 64 bytes in the file.

Random numbers and compressed data are stored raw instead of burning CPU for nothing,
and a large raw buffer is one contiguous, aligned run: loading it maps the file
(copy-on-write) and hands the mapped bytes straight to the unpickler, so a 256 MB array
costs no copy and no fresh memory. The key is verified on every read.

A damaged blob heals: the read that finds it damaged moves it aside (to
``data/_damaged/``), so the next save of the same value writes it again instead of
trusting its mere existence. Saving on the local backend also checks that an existing
blob starts like one (a torn write after a power loss leaves an empty or zeroed file).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import uuid
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .. import forksafe
from ..exceptions import CorruptArtifact, DamagedBlob
from . import scratch, serialization
from .layout import LAYOUT
from .preview import json_preview
from .records import ArtifactEntry
from .storage import Storage, StorageError

BLOB_MAGIC = b"MFLB\x02"
ZFRAME = struct.Struct("<cII")
RFRAME = struct.Struct("<cQB")
ALIGN = 64
PIECE_SIZE = 4 << 20
SMALL_BLOB = 1 << 20
PARALLEL_HASH_FROM = 16 << 20

_hash_pool: ThreadPoolExecutor | None = None


@forksafe.reset_in_child
def _forget_hash_pool() -> None:
    """A forked child inherits the pool without its threads: work sent to it would
    wait forever. The child builds its own on first use."""
    global _hash_pool
    _hash_pool = None


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    size: int
    type: str
    new: bool = False  # True if this save wrote new bytes
    preview: str | None = None  # repr of a small JSON-safe value (``preview.py``)

    def entry(self) -> ArtifactEntry:
        """The manifest entry that names these bytes (with the preview, if any)."""
        return ArtifactEntry(self.key, self.size, self.type, self.preview)


def _flat(chunk: memoryview) -> memoryview:
    return chunk if chunk.format == "B" and chunk.ndim == 1 else chunk.cast("B")


def pieces(chunks: Sequence[memoryview]) -> list[memoryview]:
    """Cut logical chunks into pieces of at most PIECE_SIZE, none crossing a chunk."""
    out: list[memoryview] = []
    for chunk in chunks:
        chunk = _flat(chunk)
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


def _compressed(piece: memoryview) -> bytes | None:
    """zlib level 1 of ``piece`` if a sample says it pays off, else None."""
    if piece.nbytes < 512:
        return None
    sample = piece[: 16 << 10]
    if len(zlib.compress(sample, 1)) >= 0.8 * sample.nbytes:
        return None
    packed = zlib.compress(piece, 1)
    return packed if len(packed) < piece.nbytes else None


def _encode(chunks: Sequence[memoryview]) -> Iterator[bytes | memoryview]:
    """Yield the blob's bytes: magic, then the frames of every chunk."""
    yield BLOB_MAGIC
    offset = len(BLOB_MAGIC)
    for chunk in chunks:
        chunk = _flat(chunk)
        start = 0  # start of the pending raw run in this chunk
        for pos in range(0, chunk.nbytes, PIECE_SIZE):
            piece = chunk[pos : pos + PIECE_SIZE]
            packed = _compressed(piece)
            if packed is None:
                continue
            for frame in _raw_run(chunk[start:pos], offset):
                offset += len(frame)
                yield frame
            head = ZFRAME.pack(b"z", piece.nbytes, len(packed))
            offset += len(head) + len(packed)
            yield head
            yield packed
            start = pos + piece.nbytes
        for frame in _raw_run(chunk[start:], offset):
            offset += len(frame)
            yield frame


def _raw_run(data: memoryview, offset: int) -> list[bytes | memoryview]:
    if not data.nbytes:
        return []
    pad = -(offset + RFRAME.size) % ALIGN
    return [RFRAME.pack(b"r", data.nbytes, pad) + b"\0" * pad, data]


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
            prepared.append((name, ser, content_key(pieces(ser.chunks)), json_preview(obj)))
        keys = sorted({key for _, _, key, _ in prepared})
        present = self._present(keys)
        to_write: dict[str, tuple] = {}
        for _, ser, key, _ in prepared:
            if present[key] is not True:
                to_write.setdefault(key, (ser.chunks, ser.size, present[key] is None))
        self.storage._map(lambda kv: self._write(kv[0], *kv[1]), list(to_write.items()))
        return {
            name: StoredArtifact(key, ser.size, ser.type_name, key in to_write, preview)
            for name, ser, key, preview in prepared
        }

    def _present(self, keys: Sequence[str]) -> dict[str, bool | None]:
        """For each key: True if its blob exists and looks whole, False if it is
        absent, None if it exists but is visibly damaged (to be overwritten)."""
        found = self.storage.exists_many([LAYOUT.blob(k) for k in keys])
        return {k: (self._looks_whole(k) or None) if ok else False for k, ok in zip(keys, found)}

    def _looks_whole(self, key: str) -> bool:
        """A cheap check of an existing blob where reading its first bytes is free
        (the local backend): a full check would cost a read and a hash per save."""
        local = self.storage.local_path(LAYOUT.blob(key))
        if local is None:
            return True  # remote: a damaged blob is set aside by the read that finds it
        try:
            with open(local, "rb") as f:
                return f.read(len(BLOB_MAGIC)) == BLOB_MAGIC
        except OSError:
            return False

    def _write(
        self, key: str, chunks: Sequence[memoryview], size: int, replace: bool = False
    ) -> None:
        path = LAYOUT.blob(key)
        if size <= SMALL_BLOB:
            self.storage.put_bytes(path, b"".join(_encode(chunks)), overwrite=replace)
            return
        fd, tmp = scratch.mkstemp(scratch.BLOB, dir=self.storage.spool_dir())
        try:
            with os.fdopen(fd, "wb") as f:  # buffered: never a silent short write
                for part in _encode(chunks):
                    f.write(part)
            self.storage.put_file(path, tmp, overwrite=replace)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def save_file(self, local_path: str) -> tuple[str, int]:
        """Store a local file's bytes content-addressed; return (key, size).

        The file is memory-mapped, so even a multi-GB checkpoint costs no copy."""
        size = os.path.getsize(local_path)
        if size == 0:
            return self.save_bytes_blob(b""), 0
        with open(local_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            parts = pieces([view])
            try:
                key = content_key(parts)
                state = self._present([key])[key]
                if state is not True:
                    self._write(key, [view], size, replace=state is None)
            finally:
                for p in parts:
                    p.release()
                view.release()
        return key, size

    def save_bytes_blob(self, data: bytes) -> str:
        """Store raw bytes (not a pickled object) content-addressed; return the key."""
        view = memoryview(data)
        key = content_key(pieces([view]))
        state = self._present([key])[key]
        if state is not True:
            self._write(key, [view], len(data), replace=state is None)
        return key

    # --- reading -----------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.storage.exists(LAYOUT.blob(key))

    def exist_many(self, keys: Sequence[str]) -> list[bool]:
        """Whether each blob is there (one round of requests for all of them)."""
        return list(self.storage.exists_many([LAYOUT.blob(k) for k in keys])) if keys else []

    def load(self, key: str) -> object:
        """Load and unpickle the artifact stored under ``key``."""
        payload, buffers = self._verified(key, _Blob.artifact)
        return serialization.deserialize(payload, buffers)

    def load_raw(self, key: str) -> bytes:
        """The logical bytes of ``key`` (for raw blobs saved with save_bytes_blob)."""
        return bytes(self._verified(key, _Blob.whole))

    def load_file(self, key: str, local_path: str) -> None:
        """Write the raw blob ``key`` into ``local_path`` (atomically)."""
        data = self._verified(key, _Blob.whole)
        tmp = local_path + ".tmp-restore"
        try:
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, local_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _verified(self, key: str, decode):
        """``decode(blob)``, setting a damaged blob aside so that it heals."""
        identity: tuple = ()
        try:
            blob = self._blob(key)
            identity = blob.identity
            return decode(blob)
        except DamagedBlob as e:
            moved = self._set_aside(key, identity)
            if moved is None:
                raise
            raise DamagedBlob(
                f"{e} It was moved aside to {moved}: the next save of the same value "
                "stores it again (rerun the step that produced it, e.g. with resume)."
            ) from None

    def _set_aside(self, key: str, identity: tuple) -> str | None:
        """Move the damaged blob out of the way; None if it changed meanwhile (another
        process already healed it) or cannot be moved."""
        path = LAYOUT.blob(key)
        local = self.storage.local_path(path)
        if local is not None and identity:
            try:
                st = os.stat(local)
            except OSError:
                return None
            if (st.st_dev, st.st_ino) != identity:
                return None  # not the file we read: leave the new one alone
        aside = LAYOUT.damaged_blob(key, uuid.uuid4().hex[:12])
        try:
            self.storage.move(path, aside)
        except (OSError, StorageError):
            return None
        return self.storage.url(aside)

    def _blob(self, key: str) -> _Blob:
        """The blob's bytes: small ones read, large ones mapped copy-on-write."""
        try:
            return self._read_blob(key)
        except CorruptArtifact:
            if not self.restore_collected(key):
                raise
        return self._read_blob(key)

    def restore_collected(self, key: str) -> bool:
        """Move ``key`` back from where gc holds unreferenced blobs: a task that was
        still running when gc looked referenced it. True if it is back in place."""
        try:
            self.storage.move(LAYOUT.collected_blob(key), LAYOUT.blob(key))
        except (OSError, StorageError):
            return self.storage.exists(LAYOUT.blob(key))  # another reader moved it back
        return True

    def _read_blob(self, key: str) -> _Blob:
        path = LAYOUT.blob(key)
        where = self.storage.url(path)
        local = self.storage.local_path(path)
        tmp = None
        try:
            if local is None:
                fd, tmp = scratch.mkstemp(scratch.DOWNLOAD)
                os.close(fd)
                self.storage.get_file(path, tmp)
                local = tmp
            with open(local, "rb") as f:
                st = os.fstat(f.fileno())
                size = st.st_size
                identity = (st.st_dev, st.st_ino) if tmp is None else ()
                if size > SMALL_BLOB:
                    data = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
                else:
                    data = memoryview(f.read())
        except FileNotFoundError:
            raise CorruptArtifact(f"Artifact blob {key} is missing from {where}.") from None
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)  # a mapping outlives the file's name
        return _Blob(data, key, where, identity)


class _Blob:
    """Decodes a blob's frames into the artifact's chunks, then checks the key.

    A chunk stored as a single raw run is returned as a slice of the (copy-on-write)
    mapping itself; any other chunk is assembled into a new bytearray."""

    def __init__(self, data: memoryview, key: str, where: str, identity: tuple = ()) -> None:
        self.data, self.key, self.where, self.identity = data, key, where, identity
        self.pos = len(BLOB_MAGIC)

    def _check_format(self) -> None:
        data = self.data
        if data[: len(BLOB_MAGIC)] != BLOB_MAGIC:
            if data[:4] == BLOB_MAGIC[:4] and data.nbytes > 4 and data[4] != 0:
                # not damage: another version wrote it, so it must not be set aside
                raise CorruptArtifact(
                    f"Artifact blob {self.key} at {self.where} uses blob format {data[4]}, "
                    f"which this version of metaflowlike does not read (it reads format "
                    f"{BLOB_MAGIC[4]})."
                )
            raise self.corrupt("unknown format")

    def corrupt(self, why: str) -> DamagedBlob:
        return DamagedBlob(f"Artifact blob {self.key} at {self.where} is corrupt: {why}.")

    def _frame(self) -> tuple[str, int, memoryview]:
        """The next frame as (kind, logical length, stored bytes)."""
        data, pos = self.data, self.pos
        kind = bytes(data[pos : pos + 1])
        try:
            if kind == b"z":
                _, raw_len, stored_len = ZFRAME.unpack_from(data, pos)
                start = pos + ZFRAME.size
            elif kind == b"r":
                _, raw_len, pad = RFRAME.unpack_from(data, pos)
                start = pos + RFRAME.size + pad
                stored_len = raw_len
            else:
                raise self.corrupt("bad frame header")
        except struct.error:
            raise self.corrupt("truncated frame header") from None
        end = start + stored_len
        if end > data.nbytes:
            raise self.corrupt("truncated data")
        self.pos = end
        return kind.decode(), raw_len, data[start:end]

    def _chunk(self, n: int) -> memoryview | bytearray:
        """The next ``n`` logical bytes, decoded from one or more frames."""
        if n == 0:
            return bytearray()
        if self.pos < self.data.nbytes and self.data[self.pos] == ord("r"):
            saved = self.pos
            _, raw_len, stored = self._frame()
            if raw_len == n and not self.data.readonly:
                return stored  # zero copy: the mapped bytes themselves
            self.pos = saved
        out = bytearray(n)
        filled = 0
        while filled < n:
            if self.pos >= self.data.nbytes:
                raise self.corrupt("truncated data")
            kind, raw_len, stored = self._frame()
            if filled + raw_len > n:
                raise self.corrupt("frames do not match the artifact's layout")
            if kind == "z":
                try:
                    piece = zlib.decompress(stored)
                except zlib.error as e:
                    raise self.corrupt(str(e)) from None
                if len(piece) != raw_len:
                    raise self.corrupt("frame length mismatch")
                out[filled : filled + raw_len] = piece
            else:
                out[filled : filled + raw_len] = stored
            filled += raw_len
        return out

    def artifact(self) -> tuple[memoryview | bytearray, list]:
        self._check_format()
        kind, raw_len, stored = self._frame()  # the header: always a single piece
        try:
            head = zlib.decompress(stored) if kind == "z" else bytes(stored)
        except zlib.error as e:
            raise self.corrupt(str(e)) from None
        try:
            hlen, lengths = serialization.parse_header(head)
        except Exception:
            raise self.corrupt("bad artifact header") from None
        if hlen != len(head):
            raise self.corrupt("bad artifact header")
        chunks = [self._chunk(n) for n in lengths]
        self._check([memoryview(head), *(memoryview(c) for c in chunks)])
        return chunks[0], chunks[1:]

    def whole(self) -> memoryview | bytearray:
        """All logical bytes as one chunk (raw blobs)."""
        self._check_format()
        total = 0
        pos = self.pos
        while self.pos < self.data.nbytes:
            total += self._frame()[1]
        self.pos = pos
        chunk = self._chunk(total)
        self._check([memoryview(chunk)])
        return chunk

    def _check(self, chunks: list[memoryview]) -> None:
        if self.pos != self.data.nbytes:
            raise self.corrupt("more data than its header announces")
        if content_key(pieces(chunks)) != self.key:
            raise self.corrupt("its bytes do not match its content key")
