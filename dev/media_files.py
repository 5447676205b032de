"""Real media files made on the spot: a PNG image and an OGG/Opus voice note (tests, the
bench and `make run`'s demo media).

The PNG is a valid image (signature, IHDR, IDAT, IEND with their CRCs); `noise` makes its
pixels random, so its size is about width*height*3 bytes (the 1 MB image of the bench).
The voice note is a valid Ogg stream with Opus's identification and comment headers (RFC
7845) and 20 ms Opus packets of silence: the container WhatsApp sends voice notes in.
"""

from __future__ import annotations

import random
import struct
import zlib


def png(width: int = 8, height: int = 8, *, noise: bool = False, seed: int = 1) -> bytes:
    """An RGB PNG; noise: random pixels (incompressible), else a gradient."""
    rng = random.Random(seed)  # noqa: S311  (test pixels, not security)
    rows = []
    for y in range(height):
        if noise:
            pixels = rng.randbytes(width * 3)
        else:
            pixels = bytes((x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 128)[c]
                           for x in range(width) for c in range(3))  # fmt: skip
        rows.append(b"\x00" + pixels)
    raw = b"".join(rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 0 if noise else 9))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def ogg_opus(packets: int = 50, serial: int = 0x4C554C4C) -> bytes:
    """A mono OGG/Opus stream of `packets` 20 ms frames of silence (packets * 20 ms)."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    vendor = b"lull tests"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [_page(serial, 0, 0, [head], bos=True), _page(serial, 1, 0, [tags])]
    silence = b"\xf8\xff\xfe"  # TOC: CELT fullband 20 ms, mono, one frame; then silence
    granule = 312 + packets * 960
    pages.append(_page(serial, 2, granule, [silence] * packets, eos=True))
    return b"".join(pages)


def _page(serial: int, seq: int, granule: int, packets: list[bytes], *, bos: bool = False,
          eos: bool = False) -> bytes:  # fmt: skip
    lacing = b""
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    flags = (2 if bos else 0) | (4 if eos else 0)
    header = b"OggS" + struct.pack("<BBqIII", 0, flags, granule, serial, seq, 0)
    page = header + bytes([len(lacing)]) + lacing + b"".join(packets)
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc
