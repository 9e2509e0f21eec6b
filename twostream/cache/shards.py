"""Fast reads of consecutive chunks from a Zarr v3 array kept in one shard file (the cache's layout).

Zarr's own read path costs about 2 ms per call (async machinery, a fresh read of the shard
index each time), as much as decoding the ten flow fields of a stack. :class:`ShardedArray`
reads the array's metadata through Zarr once, keeps the shard index (Zarr v3 sharding spec:
``(offset, nbytes)`` little-endian uint64 per chunk, then a crc32c, at the end of the file) and
then serves a slice of the first axis with one ``pread`` and one decoder call per chunk. It
accepts only what :class:`~twostream.cache.store.FlowCache` writes: one shard holding the whole
array, chunks that split the first axis only, a JPEG or bytes+zstd chunk codec.
"""

import os
from collections.abc import Callable
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation

from twostream.cache.codecs import JpegCodec

_EMPTY = 2**64 - 1  # index entry of a chunk that was never written (all fill value)
_CRC_BYTES = 4

Decoder = Callable[[memoryview, np.ndarray], np.ndarray]


def _zstd_decoder(data: memoryview, out: np.ndarray) -> np.ndarray:
    Zstd().decode(data, out=out.reshape(-1))
    return out


def _chunk_decoder(codecs: tuple) -> Decoder:
    if len(codecs) == 1 and isinstance(codecs[0], JpegCodec):
        return codecs[0].decode_chunk
    if len(codecs) == 2 and isinstance(codecs[0], BytesCodec) and isinstance(codecs[1], ZstdCodec):
        return _zstd_decoder
    raise ValueError(f"unsupported chunk codecs {codecs}")


class ShardedArray:
    """Read-only view of one single-shard Zarr array at ``path``: ``shape``, ``dtype``, ``read(start, stop)``."""

    def __init__(self, path: Path) -> None:
        array = zarr.open_array(path, mode="r")
        self.shape: tuple[int, ...] = array.shape
        self.dtype = array.dtype
        self.fill_value = array.fill_value
        codecs = array.metadata.codecs
        sharding = codecs[0]
        layout_ok = (len(codecs) == 1 and isinstance(sharding, ShardingCodec)
                     and sharding.index_location == ShardingCodecIndexLocation.end
                     and [type(c) for c in sharding.index_codecs] == [BytesCodec, Crc32cCodec]
                     and all(s >= n for s, n in zip(array.shards, self.shape, strict=True))
                     and tuple(sharding.chunk_shape[1:]) == self.shape[1:])
        if not layout_ok:
            raise ValueError(f"{path}: not the cache's layout (one shard, chunks along the first axis)")
        self._decode = _chunk_decoder(sharding.codecs)
        self.chunk_shape: tuple[int, ...] = tuple(sharding.chunk_shape)
        self._file = path / array.metadata.encode_chunk_key((0,) * len(self.shape))
        self._index = self._read_index(array.shards[0] // self.chunk_shape[0])

    def _read_index(self, num_chunks: int) -> np.ndarray:
        size = num_chunks * 16 + _CRC_BYTES
        with open(self._file, "rb") as f:
            f.seek(-size, os.SEEK_END)
            raw = f.read(size)
        body, crc = raw[:-_CRC_BYTES], raw[-_CRC_BYTES:]
        if np.uint32(google_crc32c.value(body)).tobytes() != crc:
            raise ValueError(f"{self._file}: shard index checksum mismatch (the file is damaged)")
        return np.frombuffer(body, "<u8").reshape(num_chunks, 2)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Entries [start, stop) of the first axis as a new array."""
        out = np.empty((stop - start,) + self.shape[1:], self.dtype)
        if stop <= start:
            return out
        step = self.chunk_shape[0]
        first, last = start // step, (stop - 1) // step
        entries = self._index[first:last + 1]
        written = entries[:, 0] != _EMPTY
        data = b""
        if written.any():
            lo = int(entries[written, 0].min())
            hi = int((entries[written, 0] + entries[written, 1]).max())
            fd = os.open(self._file, os.O_RDONLY)
            try:
                data = memoryview(os.pread(fd, hi - lo, lo))
            finally:
                os.close(fd)
        for k, (offset, nbytes) in enumerate(entries.tolist()):
            c0 = (first + k) * step
            lo_row, hi_row = max(start, c0), min(stop, c0 + step)
            target = out[lo_row - start:hi_row - start]
            if offset == _EMPTY:
                target[...] = self.fill_value
            elif lo_row == c0 and hi_row == c0 + step:  # the whole chunk is wanted: decode in place
                self._decode(data[offset - lo:offset - lo + nbytes], target)
            else:
                chunk = self._decode(data[offset - lo:offset - lo + nbytes], np.empty(self.chunk_shape, self.dtype))
                target[...] = chunk[lo_row - c0:hi_row - c0]
        return out
