"""The per-file index of user ids that lets erasure skip the files that cannot hold a user.

Every Parquet file with a `user_id` column is written with a Parquet Bloom filter on that column
(`bloom_options`, passed to pyarrow's writer by `assets.lake.write_parquet_atomic`). The filter lives in
the file itself: it is written atomically with the rows, removed with them, rewritten when erasure
rewrites the file, and sits only where the ids themselves are (no id leaves its layer).

`may_hold(path, hashes)` reads the file's footer and its filters only, never a data page: False means no
row's `user_id` is one of the ids (a Bloom filter has no false negatives); True means some may be (about
`FPP` of the files that hold none say so too, and are then read in full). A file without a filter (written
before filters, or imported by DuckDB) says True.

The filter is Parquet's split block Bloom filter: XXH64 (seed 0) of the value's plain bytes; block
((h >> 32) * blocks) >> 32 of 32-byte blocks; in it, word i tests bit ((h mod 2^32) * SALT[i] mod 2^32) >> 27.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

USER_COLUMN = "user_id"
FPP = 0.01  # false positives: files read in full for nothing; 1% costs about 1.2 bytes per distinct user
_MAX_NDV = 1 << 20  # pyarrow's row groups hold at most 1Mi rows: no filter needs more

_SALT = np.array(
    [0x47B6137B, 0x44974D91, 0x8824AD5B, 0xA2B7289D, 0x705495C7, 0x2DF1424B, 0x9EFC4947, 0x5C6BFB31], np.uint64
)
_M64 = (1 << 64) - 1
_P1, _P2, _P3, _P4, _P5 = (
    11400714785074694791,
    14029467366897019727,
    1609587929392839161,
    9650029242287828579,
    2870177450012600261,
)


def bloom_options(table: pa.Table) -> dict | None:
    """pyarrow's `bloom_filter_options` for a table: a filter on `user_id` sized to its distinct ids, or
    None when the table has no such column (an aggregate)."""
    if USER_COLUMN not in table.column_names or table.num_rows == 0:
        return None
    return bloom_options_for(int(pc.count_distinct(table.column(USER_COLUMN)).as_py() or 0))


def bloom_options_for(distinct_ids: int) -> dict:
    """`bloom_options` of a table with rows and a `user_id` column holding `distinct_ids` distinct ids."""
    return {USER_COLUMN: {"ndv": max(1, min(distinct_ids, _MAX_NDV)), "fpp": FPP}}


def id_hashes(user_ids: Iterable[str]) -> np.ndarray:
    """XXH64 of each id's UTF-8 bytes: what a Parquet Bloom filter is probed with."""
    return np.array(sorted({xxh64(u.encode()) for u in user_ids if u}), np.uint64)


def may_hold(path: Path, hashes: np.ndarray, metadata: pq.FileMetaData | None = None) -> bool:
    """Whether the file's `user_id` column may hold one of the ids hashed in `hashes` (`id_hashes`); reads
    the footer (unless `metadata` is given) and the filters only. True when a row group has no filter."""
    if len(hashes) == 0:
        return False
    if metadata is None:  # a local path, or an object-store one (`upath.UPath`, read by ranged requests)
        metadata = pq.read_metadata(path if isinstance(path, Path) else path.open("rb"))
    names = metadata.schema.to_arrow_schema().names
    if USER_COLUMN not in names:
        return False
    column = names.index(USER_COLUMN)
    with path.open("rb") as file:
        for group in range(metadata.num_row_groups):
            chunk = metadata.row_group(group).column(column)
            if chunk.num_values == 0 or (chunk.is_stats_set and chunk.statistics.null_count == chunk.num_values):
                continue
            offset, length = chunk.bloom_filter_offset, chunk.bloom_filter_length
            if not offset or offset < 0 or not length:
                return True
            file.seek(offset)
            if _filter_holds_any(file.read(length), hashes):
                return True
    return False


def _filter_holds_any(data: bytes, hashes: np.ndarray) -> bool:
    """Probe a serialized filter (its Thrift header, then the bitset) with every hash at once."""
    if data[0] != 0x15:  # field 1 (numBytes, i32) of the compact-Thrift BloomFilterHeader
        return True
    value, shift, pos = 0, 0, 1
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            break
    size = (value >> 1) ^ -(value & 1)  # zigzag
    if size <= 0 or size % 32 or size > len(data):
        return True
    words = np.frombuffer(data[len(data) - size :], dtype="<u4").reshape(-1, 8).astype(np.uint64)
    block = ((hashes >> np.uint64(32)) * np.uint64(len(words))) >> np.uint64(32)
    key = hashes & np.uint64(0xFFFFFFFF)
    bits = ((key[:, None] * _SALT[None, :]) & np.uint64(0xFFFFFFFF)) >> np.uint64(27)
    masks = np.uint64(1) << bits
    return bool(((words[block.astype(np.int64)] & masks) != 0).all(axis=1).any())


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of `data` (the hash Parquet's Bloom filters use); ids are short, so pure Python is enough."""
    n, pos = len(data), 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M64, (seed + _P2) & _M64, seed, (seed - _P1) & _M64]
        while pos + 32 <= n:
            for i in range(4):
                v[i] = _round(v[i], int.from_bytes(data[pos : pos + 8], "little"))
                pos += 8
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
        for lane in v:
            h = ((h ^ _round(0, lane)) * _P1 + _P4) & _M64
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while pos + 8 <= n:
        h ^= _round(0, int.from_bytes(data[pos : pos + 8], "little"))
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        pos += 8
    if pos + 4 <= n:
        h ^= (int.from_bytes(data[pos : pos + 4], "little") * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        pos += 4
    for byte in data[pos:]:
        h ^= (byte * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    return h ^ (h >> 32)


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _M64, 31) * _P1) & _M64


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64
