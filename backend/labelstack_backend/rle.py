"""Label Studio brush RLE, vectorised.

Label Studio stores a brush mask as the RGBA pixels of the mask, flattened,
run-length encoded with thi.ng's rle-pack bit format:

    header: num (32 bits) | word size - 1 (5 bits) | four run-size widths - 1 (4 bits each)
    then per run: 1 | size index (2 bits) | run length - 1 (3/4/8/16 bits) | value (8 bits)

:func:`encode` produces the same bytes as label-studio-sdk's ``mask2rle``
(including its quirks: runs longer than 65536 split into 65536-long chunks, and a
whole zero byte of padding when the bit count is already a multiple of 8), but
with numpy instead of a per-run Python string loop.

Because every pixel is repeated four times (RGBA), every run is at least four
long, so the literal (single value) form never occurs when encoding; the
decoder handles it since the browser's encoder may produce it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WORD_SIZE = 8
RLE_SIZES = (3, 4, 8, 16)
_HEADER_BITS = 32 + 5 + 4 * 4
_MAX_CHUNK = 1 << 16


def _header(num: int) -> tuple[int, int]:
    value = num
    value = (value << 5) | (WORD_SIZE - 1)
    for size in RLE_SIZES:
        value = (value << 4) | (size - 1)
    return value, _HEADER_BITS


def _runs(flat: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Run lengths and values of a 1-D array."""
    change = np.flatnonzero(flat[1:] != flat[:-1])
    ends = np.empty(change.size + 1, dtype=np.int64)
    ends[:-1] = change
    ends[:-1] += 1
    ends[-1] = flat.size
    lengths = np.empty_like(ends)
    lengths[0] = ends[0]
    np.subtract(ends[1:], ends[:-1], out=lengths[1:])
    return lengths, flat[ends - 1]


def _split_long(
    lengths: npt.NDArray[np.int64], values: npt.NDArray[np.uint8], idx: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.uint64]]:
    """Split runs longer than 65536 as the SDK does: full 65536 chunks, then the rest."""
    long = lengths > _MAX_CHUNK
    full = np.where(long, (lengths - 1) // _MAX_CHUNK, 0)
    pieces = full + 1
    out_len = np.repeat(lengths, pieces)
    out_val = np.repeat(values, pieces)
    out_idx = np.repeat(idx, pieces)
    last = np.cumsum(pieces) - 1
    # Every piece but the last of a run is a full chunk.
    out_len[:] = _MAX_CHUNK
    out_len[last] = lengths - full * _MAX_CHUNK
    return out_len, out_val, out_idx


_LEN_BITS = np.array(RLE_SIZES, dtype=np.uint64)


def encode(mask: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Encode a 2-D mask (values 0-255) to Label Studio brush RLE bytes."""
    if mask.ndim != 2:
        raise ValueError("mask must be 2-D")
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8) * np.uint8(255)
    elif mask.dtype != np.uint8:
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError("mask values must be within 0..255")
        mask = mask.astype(np.uint8)
    flat = np.ascontiguousarray(mask).ravel()
    header, header_bits = _header(flat.size * 4)
    if flat.size == 0:
        return _pack(header, header_bits, np.zeros(0, np.uint64), np.zeros(0, np.uint64))
    lengths, values = _runs(flat)
    lengths *= 4  # every pixel is four RGBA values
    # Size class per run: <=8 -> 3 bits, <=16 -> 4, <=256 -> 8, else 16 (also for
    # every piece of a split run, however short the last piece is).
    idx = (lengths > 8).view(np.uint8) + (lengths > 16).view(np.uint8) + (lengths > 256).view(np.uint8)
    idx64 = idx.astype(np.uint64)
    if lengths[-1] > _MAX_CHUNK or lengths.max() > _MAX_CHUNK:
        lengths, values, idx64 = _split_long(lengths, values, idx64)
    len_bits = _LEN_BITS[idx64]
    # code = 1 | idx (2 bits) | length - 1 | value (8 bits), as one integer.
    codes = (idx64 | np.uint64(4)) << (len_bits + np.uint64(WORD_SIZE))
    codes |= (lengths - 1).astype(np.uint64) << np.uint64(WORD_SIZE)
    codes |= values
    return _pack(header, header_bits, codes, len_bits + np.uint64(3 + WORD_SIZE))


def _pack(
    header: int, header_bits: int, codes: npt.NDArray[np.uint64], widths: npt.NDArray[np.uint64]
) -> npt.NDArray[np.uint8]:
    """Concatenate variable-width big-endian bit codes into bytes.

    Each code is shorter than 64 bits, so it lands in one 64-bit word or straddles
    two. Codes are in order, so the codes that start in a word are contiguous and
    can be OR-reduced with ``reduceat``; at most one code per word spills into the
    next word.
    """
    all_codes = np.empty(codes.size + 1, dtype=np.uint64)
    all_codes[0] = header
    all_codes[1:] = codes
    all_widths = np.empty(codes.size + 1, dtype=np.uint64)
    all_widths[0] = header_bits
    all_widths[1:] = widths
    ends = np.cumsum(all_widths)
    total_bits = int(ends[-1])
    starts = ends - all_widths
    # The SDK always pads with 8 - (bits % 8) zero bits: a whole byte when already aligned.
    n_bytes = (total_bits + (8 - total_bits % 8)) // 8
    words = np.zeros((n_bytes + 7) // 8 + 1, dtype=np.uint64)

    word = starts >> np.uint64(6)
    # Where the code ends relative to the end of its first word; > 0 means it spills.
    over = (starts & np.uint64(63)) + all_widths
    fits = over <= 64
    first = np.where(fits, all_codes << (np.uint64(64) - over), all_codes >> (over - np.uint64(64)))
    group_starts = np.flatnonzero(np.diff(word, prepend=np.uint64(1 << 63)))
    words[word[group_starts]] = np.bitwise_or.reduceat(first, group_starts)
    spill = np.flatnonzero(~fits)
    if spill.size:
        rest = over[spill] - np.uint64(64)
        words[word[spill] + np.uint64(1)] |= all_codes[spill] << (np.uint64(64) - rest)
    return words.astype(">u8").view(np.uint8)[:n_bytes].copy()


def encode_list(mask: npt.NDArray[np.generic]) -> list[int]:
    """:func:`encode` as the list of ints that goes in a Label Studio result."""
    out: list[int] = encode(mask).tolist()
    return out


class _Bits:
    """Big-endian bit reader; the bits are unpacked once with numpy."""

    def __init__(self, data: bytes) -> None:
        unpacked = np.unpackbits(np.frombuffer(data, dtype=np.uint8)) + ord("0")
        self.text = unpacked.tobytes().decode("ascii")
        self.pos = 0

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > len(self.text):
            raise ValueError("RLE data ends early")
        value = int(self.text[self.pos : end], 2)
        self.pos = end
        return value


def decode(rle: list[int] | bytes | npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Decode Label Studio brush RLE to a ``height x width`` uint8 mask (the alpha channel)."""
    data = bytes(bytearray(rle)) if not isinstance(rle, bytes) else rle
    bits = _Bits(data)
    num = bits.read(32)
    word_size = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    if num != height * width * 4:
        raise ValueError(f"RLE holds {num} values, expected {height}x{width}x4 = {height * width * 4}")
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeat = bits.read(1)
        j = i + 1 + bits.read(sizes[bits.read(2)])
        if j > num:
            raise ValueError("RLE run overflows the image")
        if repeat:
            out[i:j] = bits.read(word_size)
            i = j
        else:
            while i < j:
                out[i] = bits.read(word_size)
                i += 1
    return out.reshape(height, width, 4)[:, :, 3].copy()
