"""How record bodies and state values are kept on disk (schema version 2).

Signed bodies and state values are canonical JSON: short documents repeating the same
keys, record types and role names. Each one is stored as one Zstandard frame, compressed
with a dictionary trained on market records, behind one marker byte::

    0x01 + frame    zstd, with the store's dictionary (``meta.zstd_dictionary``)
    0x02 + frame    zstd, without a dictionary
    anything else   the bytes themselves (stores written before version 2)

A body that happens to begin with byte 0x01 or 0x02 (an invalid transaction is kept as
received) is always stored compressed, so a stored blob is never ambiguous.

The dictionary is part of each store (copied into ``meta`` when the store is created),
so a store stays readable whatever dictionary a later carledger ships. What is hashed,
signed, proven and served is always the original bytes: compression is invisible above
:mod:`carledger.store.sqlite`. A blob that does not decompress, or claims to expand
beyond :data:`MAX_EXPANDED`, is damage (``store_damaged``), never served.

Measured on market data (``docs/performance.md``): a 550-byte body becomes about 130
bytes, a 3.5 KB vehicle state about 870, at about 6 and 10 microseconds each (level 1).
See ADR 0010 for the choice of Zstandard.
"""

from __future__ import annotations

import threading
from importlib import resources

import zstandard

from carledger.errors import StorageError

__all__ = ["MAX_EXPANDED", "Codec", "packaged_dictionary"]

WITH_DICTIONARY = 0x01
PLAIN = 0x02
_MARKERS = (WITH_DICTIONARY, PLAIN)
#: Largest original a stored blob may expand to (bodies are far smaller; see BodyLimit).
MAX_EXPANDED = 64 << 20
LEVEL = 1


def packaged_dictionary() -> bytes:
    """The dictionary new stores get (``scripts/train-store-dictionary`` made it)."""
    return resources.files("carledger.store").joinpath("records.zdict").read_bytes()


class Codec:
    """Packs and unpacks stored blobs; safe to share between threads."""

    def __init__(self, dictionary: bytes | None) -> None:
        self._dictionary: zstandard.ZstdCompressionDict | None = None
        if dictionary:
            self._dictionary = zstandard.ZstdCompressionDict(dictionary)
            self._dictionary.precompute_compress(level=LEVEL)
        self._local = threading.local()

    def _tools(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        # Compressor and decompressor objects are not thread-safe: one pair per thread.
        tools: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None = getattr(
            self._local, "tools", None
        )
        if tools is None:
            compressor = zstandard.ZstdCompressor(
                level=LEVEL,
                dict_data=self._dictionary,
                write_checksum=False,
                write_content_size=True,
                write_dict_id=False,
            )
            if self._dictionary is not None:
                decompressor = zstandard.ZstdDecompressor(dict_data=self._dictionary)
            else:
                decompressor = zstandard.ZstdDecompressor()
            tools = (compressor, decompressor)
            self._local.tools = tools
        return tools

    def pack(self, raw: bytes) -> bytes:
        """The stored form of ``raw``: compressed unless that would not save a byte."""
        frame = self._tools()[0].compress(raw)
        if len(frame) + 1 >= len(raw) and (not raw or raw[0] not in _MARKERS):
            return raw
        return bytes((WITH_DICTIONARY if self._dictionary is not None else PLAIN,)) + frame

    def unpack(self, blob: bytes, what: str = "A stored value") -> bytes:
        """The original bytes of a stored blob; ``store_damaged`` if it cannot be one."""
        if not blob or blob[0] not in _MARKERS:
            return blob
        frame = blob[1:]
        try:
            size = zstandard.frame_content_size(frame)
            if size < 0 or size > MAX_EXPANDED:
                raise StorageError(
                    "store_damaged",
                    f"{what} is damaged: its compressed form does not state a plausible size.",
                )
            if blob[0] == WITH_DICTIONARY:
                if self._dictionary is None:
                    raise StorageError(
                        "store_damaged",
                        f"{what} needs the store's compression dictionary, which is missing.",
                    )
                out = self._tools()[1].decompress(frame, max_output_size=MAX_EXPANDED)
            else:
                out = zstandard.ZstdDecompressor().decompress(frame, max_output_size=MAX_EXPANDED)
        except zstandard.ZstdError as exc:
            raise StorageError(
                "store_damaged", f"{what} is damaged: it does not decompress ({exc})."
            ) from exc
        if len(out) != size:
            raise StorageError("store_damaged", f"{what} is damaged: it decompresses short.")
        return out
