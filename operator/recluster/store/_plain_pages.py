"""Read a PLAIN, uncompressed Parquet float column straight into a numpy buffer.

Why: Parquet has no fixed-size-list type, so a fixed_size_list<float32>[D]
column is stored as a repeated field with a repetition and a definition level
per float. Arrow decodes those levels for every value to rebuild the lists:
at 1M×384 that is most of the read time (~2 s on a 2-core machine) and ~5×
a row group of temporary memory. When the column is PLAIN and uncompressed
(as this store writes it) and every row holds exactly D non-null values, the
floats of each data page are one contiguous little-endian run after the
levels: we skip the levels by their byte lengths and `preadv` the floats
directly into the caller's matrix (from object stores: the chunk is fetched
in one ranged read and copied once). No level decoding, no Arrow buffers.

Anything else (compression, dictionary or other encodings, nulls, empty
lists, a page layout we do not expect) makes `read_plain_floats` return False
before trusting the data, and the caller uses pyarrow instead. Page headers
are Thrift compact-protocol structs, parsed here with a minimal decoder.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Parquet enums (parquet.thrift).
_DATA_PAGE, _INDEX_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 1, 2, 3
_PLAIN, _RLE = 0, 3
_HEADER_PROBE = 64 * 1024  # bytes read to parse a page header and find its levels


class _NeedMore(Exception):
    """The header did not fit in the bytes read so far."""


class _Unsupported(Exception):
    """The page layout is not the simple one this reader handles."""


class _Compact:
    """Just enough of the Thrift compact protocol to read Parquet page headers."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _NeedMore
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise _Unsupported("malformed varint")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise _NeedMore
        self.pos += n

    def value(self, ctype: int) -> Any:
        if ctype in (1, 2):  # bool inside a struct field header: the type is the value
            return ctype == 1
        if ctype == 3:
            return self.byte()
        if ctype in (4, 5, 6):
            return self.zigzag()
        if ctype == 7:
            self.skip(8)
            return None
        if ctype == 8:
            self.skip(self.varint())
            return None
        if ctype in (9, 10):
            header = self.byte()
            size = header >> 4
            if size == 15:
                size = self.varint()
            etype = header & 0x0F
            for _ in range(size):
                if etype in (1, 2):
                    self.byte()  # bools in lists take one byte
                else:
                    self.value(etype)
            return None
        if ctype == 11:
            size = self.varint()
            if size:
                kv = self.byte()
                for _ in range(size):
                    self.value(kv >> 4)
                    self.value(kv & 0x0F)
            return None
        if ctype == 12:
            return self.struct()
        raise _Unsupported(f"thrift type {ctype}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, ctype = header >> 4, header & 0x0F
            field_id = last + delta if delta else self.zigzag()
            fields[field_id] = self.value(ctype)
            last = field_id


class LocalChunk:
    """Positioned reads from an open file descriptor (no intermediate buffer)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def pread(self, n: int, offset: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def readinto(self, view: memoryview, offset: int) -> int:
        return os.preadv(self.fd, [view], offset)


class BufferedChunk:
    """A column chunk fetched whole (one ranged GET on an object store)."""

    def __init__(self, data: bytes, start: int) -> None:
        self.data = memoryview(data)
        self.start = start

    def pread(self, n: int, offset: int) -> bytes:
        at = offset - self.start
        return bytes(self.data[at : at + n])

    def readinto(self, view: memoryview, offset: int) -> int:
        at = offset - self.start
        piece = self.data[at : at + len(view)]
        view[: len(piece)] = piece
        return len(piece)


def read_plain_floats(
    source: LocalChunk | BufferedChunk,
    chunk_start: int,
    chunk_length: int,
    max_repetition_level: int,
    max_definition_level: int,
    value_size: int,
    out: NDArray[np.float32],
) -> bool:
    """Fill `out` (C-contiguous, any shape) with the column chunk's values; False if unsuitable.

    `source` reads the Parquet file; the chunk is the byte range of one
    column in one row group (from the footer);
    `value_size` is the size of one PLAIN value (4 for a float leaf, 4·D for a
    fixed_size_binary). Returns True only if exactly `out.nbytes` bytes were
    read, one value per level entry.
    """
    if not out.flags.c_contiguous or out.dtype != np.float32:
        return False
    target = out.reshape(-1).view(np.uint8).data
    written = 0
    pos = chunk_start
    end = chunk_start + chunk_length
    try:
        while pos < end:
            probe = source.pread(min(_HEADER_PROBE, end - pos), pos)
            while True:
                try:
                    header, header_length, levels_length, num_values = _page(
                        probe, max_repetition_level, max_definition_level
                    )
                    break
                except _NeedMore:
                    if len(probe) >= end - pos:
                        return False
                    probe = source.pread(min(len(probe) * 4, end - pos), pos)
            page_type, compressed_size = header[1], header[3]
            if page_type == _INDEX_PAGE:
                pos += header_length + compressed_size
                continue
            values_length = compressed_size - levels_length
            if values_length != value_size * num_values or written + values_length > len(target):
                return False  # nulls, empty lists, or more values than rows×D
            start = pos + header_length + levels_length
            view = target[written : written + values_length]
            while len(view):
                n = source.readinto(view, start)
                if n <= 0:
                    return False
                view = view[n:]
                start += n
            written += values_length
            pos += header_length + compressed_size
    except (_Unsupported, _NeedMore, KeyError, TypeError, struct.error):
        return False
    return pos == end and written == len(target)


def _page(
    data: bytes, max_repetition_level: int, max_definition_level: int
) -> tuple[dict[int, Any], int, int, int]:
    """(page header, header length, bytes of levels before the values, number of values)."""
    reader = _Compact(data)
    header = reader.struct()
    header_length = reader.pos
    page_type = header[1]
    if page_type == _INDEX_PAGE:
        return header, header_length, 0, 0
    if page_type == _DATA_PAGE:
        page = header[5]
        if page[2] != _PLAIN:
            raise _Unsupported("encoding")
        levels = 0
        for level, encoding in ((max_repetition_level, page[4]), (max_definition_level, page[3])):
            if level > 0:
                if encoding != _RLE:
                    raise _Unsupported("level encoding")
                at = header_length + levels
                if at + 4 > len(data):
                    raise _NeedMore
                levels += 4 + struct.unpack_from("<i", data, at)[0]
        return header, header_length, levels, int(page[1])
    if page_type == _DATA_PAGE_V2:
        page = header[8]
        if page[4] != _PLAIN or page[2] != 0:
            raise _Unsupported("encoding or nulls")
        return header, header_length, int(page[5]) + int(page[6]), int(page[1])
    raise _Unsupported(f"page type {page_type}")  # dictionary pages: not PLAIN
