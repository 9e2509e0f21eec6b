"""How the cache compresses each chunk: JPEG inside Zarr chunks (lossy) or zstd (lossless).

Flow fields are smooth images, and JPEG at high quality stores them in about a third of the
bytes of any lossless coder we measured (experiments/cache_benchmark) for an error within a few
thousandths of a pixel of the uint8 quantisation alone. :class:`JpegCodec` is a Zarr v3
array-to-bytes codec (``"twostream.jpeg"``) that stores one chunk as one JPEG image: a flow
chunk (n, 2, H, W) as an (n*2*H, W) grey image, a frame chunk (n, H, W, 3) as an (n*H, W, 3)
RGB image. It is registered with Zarr when this module is imported, so reading a cache with
plain ``zarr`` needs ``import twostream.cache`` first.

Zarr encodes the chunks of a shard concurrently on its event loop; the codec hands each chunk to a
thread (as Zarr's own zstd codec does), where libjpeg-turbo runs without the GIL, so a video's
chunks are compressed on all cores. Each chunk is encoded alone, so the bytes are those of a
serial encoder.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import imagecodecs
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

JPEG_CODEC_NAME = "twostream.jpeg"
LOSSLESS = ("zstd",)
CODECS = ("jpeg", *LOSSLESS)


def _as_image(chunk: np.ndarray) -> np.ndarray:
    """The 2-D grey or (rows, W, 3) RGB image JPEG stores for a chunk (a view: no copy)."""
    if chunk.shape[-1] == 3:
        return chunk.reshape(-1, chunk.shape[-2], 3)
    return chunk.reshape(-1, chunk.shape[-1])


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """A uint8 chunk as one baseline JPEG (libjpeg-turbo through imagecodecs), Huffman tables optimised."""

    is_fixed_size = False
    quality: int = 95

    def __init__(self, *, quality: int = 95) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        object.__setattr__(self, "quality", int(quality))

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, configuration = parse_named_configuration(data, JPEG_CODEC_NAME)
        return cls(**configuration)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": JPEG_CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        if dtype.to_native_dtype() != np.uint8:
            raise ValueError(f"{JPEG_CODEC_NAME} stores uint8 arrays only, not {dtype}")

    def encode_chunk(self, chunk: np.ndarray) -> bytes:
        """One chunk -> JPEG bytes."""
        return imagecodecs.jpeg8_encode(np.ascontiguousarray(_as_image(chunk)), level=self.quality,
                                        optimize=True)

    @staticmethod
    def decode_chunk(data: bytes | memoryview, out: np.ndarray) -> np.ndarray:
        """JPEG bytes -> the chunk, decoded straight into ``out`` (C-contiguous, the chunk's shape)."""
        imagecodecs.jpeg8_decode(data, out=_as_image(out))
        return out

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        out = np.empty(chunk_spec.shape, np.uint8)
        self.decode_chunk(chunk_bytes.to_bytes(), out)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(out)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return chunk_spec.prototype.buffer.from_bytes(self.encode_chunk(chunk_array.as_numpy_array()))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size depends on the content")


register_codec(JPEG_CODEC_NAME, JpegCodec)


def chunk_codecs(codec: Mapping[str, Any]) -> list[ArrayBytesCodec | ZstdCodec]:
    """The Zarr codec chain of one chunk for a codec config ``{name: jpeg|zstd, level: ...}``."""
    name, level = codec["name"], codec["level"]
    if name == "jpeg":
        return [JpegCodec(quality=level)]
    if name == "zstd":
        return [BytesCodec(), ZstdCodec(level=level)]
    raise ValueError(f"unknown cache codec {name!r}; choose one of {', '.join(CODECS)}")


def codec_fingerprint(codec: Mapping[str, Any]) -> dict[str, Any]:
    """What of a codec config changes the stored values: a lossy codec's settings; nothing for lossless."""
    if codec["name"] in LOSSLESS:
        return {"name": "lossless"}
    return {"name": codec["name"], "level": codec["level"]}
