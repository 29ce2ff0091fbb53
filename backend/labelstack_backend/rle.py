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

import threading

import numpy as np
import numpy.typing as npt

WORD_SIZE = 8
RLE_SIZES = (3, 4, 8, 16)
_HEADER_BITS = 32 + 5 + 4 * 4
_MAX_CHUNK = 1 << 16
_MAX_PIXELS_PER_CODE = _MAX_CHUNK // 4  # one code covers at most 65536 values = 16384 pixels
# Runs are packed in blocks whose scratch arrays are kept per thread: on a 2-core VM,
# page faults on fresh multi-MB temporaries cost more than the arithmetic itself.
_BLOCK = 1 << 17


def _header(num: int) -> tuple[int, int]:
    value = num
    value = (value << 5) | (WORD_SIZE - 1)
    for size in RLE_SIZES:
        value = (value << 4) | (size - 1)
    return value, _HEADER_BITS


def _code_tables() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Code (without the value) and width for a run of ``n`` pixels, ``n`` = 1..16384.

    The second table forces the 16-bit length field, which the SDK uses for every
    piece of a split run, however short the last piece is.
    """
    n = np.arange(_MAX_PIXELS_PER_CODE + 1, dtype=np.int64)
    values = np.maximum(n * 4, 1)
    idx = (values > 8).astype(np.int64) + (values > 16) + (values > 256)
    len_bits = np.array(RLE_SIZES, dtype=np.int64)[idx]
    length_field = (values - 1) << WORD_SIZE
    code = ((idx | 4) << (len_bits + WORD_SIZE)) | length_field
    forced = ((3 | 4) << (16 + WORD_SIZE)) | length_field
    return code.astype(np.uint64), forced.astype(np.uint64), len_bits + 3 + WORD_SIZE


_CODE, _CODE_FORCED16, _WIDTH = _code_tables()


class _Scratch(threading.local):
    """Per-thread scratch arrays for one block of runs, reused across calls."""

    size = 0

    def ensure(self, k: int) -> _Scratch:
        if k > self.size:
            self.size = k
            self.ends = np.empty(k, np.int64)
            self.starts = np.empty(k, np.int64)
            self.word = np.empty(k, np.int64)
            self.shift = np.empty(k, np.int64)
            self.codes = np.empty(k, np.uint64)
            self.widths = np.empty(k, np.int64)
            self.window = np.empty(k, np.uint64)
            self.high = np.empty(k, np.uint32)
            self.lengths = np.empty(k, np.int64)
        return self


_scratch = _Scratch()


def _run_ends(flat: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    """Index one past the end of every run of equal values."""
    change = np.flatnonzero(flat[1:] != flat[:-1])
    change += 1
    return np.append(change, flat.size)


def _split_long(
    lengths: npt.NDArray[np.int64], values: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Codes and widths when some run is longer than one code can hold.

    Like the SDK: full 65536-value pieces, then the rest, all with the 16-bit length field.
    """
    pieces = (lengths - 1) // _MAX_PIXELS_PER_CODE + 1
    split = pieces > 1
    piece_len = np.repeat(lengths, pieces)
    last = np.cumsum(pieces) - 1
    piece_len[:] = _MAX_PIXELS_PER_CODE
    piece_len[last] = lengths - (pieces - 1) * _MAX_PIXELS_PER_CODE
    forced = np.repeat(split, pieces)
    codes: npt.NDArray[np.uint64] = np.where(forced, _CODE_FORCED16[piece_len], _CODE[piece_len])
    codes |= np.repeat(values, pieces)
    widths: npt.NDArray[np.int64] = np.where(forced, 16 + 3 + WORD_SIZE, _WIDTH[piece_len])
    return codes, widths


def _block_codes(
    ends: npt.NDArray[np.intp], values: npt.NDArray[np.uint8], prev_end: int, s: _Scratch
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Codes and widths of the runs ending at ``ends`` with ``values`` (the previous run
    ended at ``prev_end``)."""
    k = ends.size
    lengths = s.lengths[:k]
    lengths[0] = ends[0] - prev_end
    np.subtract(ends[1:], ends[:-1], out=lengths[1:])
    if lengths.max() > _MAX_PIXELS_PER_CODE:
        return _split_long(lengths.copy(), values)
    codes, widths = s.codes[:k], s.widths[:k]
    np.take(_CODE, lengths, out=codes)
    np.bitwise_or(codes, values, out=codes)
    np.take(_WIDTH, lengths, out=widths)
    return codes, widths


def _as_uint8(mask: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    if mask.ndim != 2:
        raise ValueError("mask must be 2-D")
    if mask.dtype == np.bool_:
        return mask.view(np.uint8) * np.uint8(255)
    if mask.dtype != np.uint8:
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError("mask values must be within 0..255")
        return mask.astype(np.uint8)
    return mask  # type: ignore[return-value]


def _encode_runs(
    ends: npt.NDArray[np.intp], values: npt.NDArray[np.uint8], pixels: int
) -> npt.NDArray[np.uint8]:
    """RLE bytes of ``pixels`` pixels in runs ending at ``ends`` (the last one at ``pixels``)."""
    header, header_bits = _header(pixels * 4)
    packer = _Packer(header, header_bits)
    if ends.size:
        s = _scratch.ensure(min(ends.size, _BLOCK))
        prev = 0
        for lo in range(0, ends.size, _BLOCK):
            block = ends[lo : lo + _BLOCK]
            codes, widths = _block_codes(block, values[lo : lo + _BLOCK], prev, s)
            packer.add(codes, widths, s)
            prev = int(block[-1])
    return packer.finish()


def encode(mask: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Encode a 2-D mask (values 0-255) to Label Studio brush RLE bytes."""
    flat = np.ascontiguousarray(_as_uint8(mask)).ravel()
    ends = _run_ends(flat) if flat.size else np.zeros(0, np.intp)
    return _encode_runs(ends, flat[ends - 1], flat.size)


def encode_window(
    window: npt.NDArray[np.generic], x0: int, y0: int, height: int, width: int
) -> npt.NDArray[np.uint8]:
    """:func:`encode` of a ``height`` x ``width`` mask that is 0 outside ``window`` (its
    top-left pixel at ``x0``, ``y0``), without building the whole mask: the cost follows
    the window, not the image."""
    vals = _as_uint8(window)
    h, w = vals.shape
    if h == 0 or w == 0:
        return encode(np.zeros((height, width), np.uint8))
    # A zero after each row (and the last) stands for the zeros between this row's window
    # and the next's; window pixel (r, j) is image pixel (y0 + r) * width + x0 + j, the
    # extra one too. A window as wide as the image has no zeros between its rows.
    pad = 1 if w < width else 0
    flat = np.append(np.pad(vals, ((0, 0), (0, pad))).ravel(), np.uint8(0))
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1  # window indices where a run starts
    first = flat[0] if x0 == 0 and y0 == 0 else np.uint8(0)  # the image's first pixel
    if flat[0] != first:
        starts = np.concatenate(([0], starts))
    rows, cols = np.divmod(starts, w + pad)
    at = (y0 + rows) * width + x0 + cols
    pixels = height * width
    keep = at < pixels  # the extra zero after the last row may lie past the image
    ends = np.append(at[keep], pixels).astype(np.intp)
    values = np.concatenate(([first], flat[starts[keep]])).astype(np.uint8)
    return _encode_runs(ends, values, pixels)


class _Packer:
    """Concatenates variable-width big-endian bit codes into 32-bit words.

    A code (at most 27 bits) placed in a 64-bit window that starts at its own
    32-bit word always fits: the window's high half belongs to that word, its low
    half spills into the next. Codes starting in the same word are contiguous and
    disjoint, so ``bitwise_or.reduceat`` merges them, and only the last code of a
    word can spill.
    """

    def __init__(self, header: int, header_bits: int) -> None:
        self.parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint32]]] = []
        self.bits = header_bits
        # The 53-bit header starts the stream: two words, one of them partly filled.
        window = header << (64 - header_bits)
        self.parts.append((np.array([0, 1]), np.array([window >> 32, window & 0xFFFFFFFF], np.uint32)))

    def add(self, codes: npt.NDArray[np.uint64], widths: npt.NDArray[np.int64], s: _Scratch) -> None:
        k = codes.size
        if k > s.size:  # split runs can outgrow the scratch block
            for lo in range(0, k, s.size):
                self.add(codes[lo : lo + s.size], widths[lo : lo + s.size], s)
            return
        ends, starts, word, shift = s.ends[:k], s.starts[:k], s.word[:k], s.shift[:k]
        window, high = s.window[:k], s.high[:k]
        np.cumsum(widths, out=ends)
        ends += self.bits
        np.subtract(ends, widths, out=starts)
        np.right_shift(starts, 5, out=word)
        np.bitwise_and(starts, 31, out=shift)
        np.subtract(64, shift, out=shift)
        shift -= widths
        np.left_shift(codes, shift.view(np.uint64), out=window)
        np.right_shift(window, np.uint64(32), out=high, casting="unsafe")
        group_starts = np.flatnonzero(word[1:] != word[:-1])
        group_starts += 1
        group_starts = np.concatenate(([0], group_starts))
        merged = np.bitwise_or.reduceat(high, group_starts)
        last = np.empty_like(group_starts)
        last[:-1] = group_starts[1:] - 1
        last[-1] = k - 1
        spill = window[last].astype(np.uint32)  # the low halves
        self.parts.append((word[group_starts].copy(), merged))
        self.parts.append((word[last] + 1, spill))
        self.bits = int(ends[-1])

    def finish(self) -> npt.NDArray[np.uint8]:
        total_bits = self.bits
        # The SDK always pads with 8 - (bits % 8) zero bits: a whole byte when already aligned.
        n_bytes = (total_bits + (8 - total_bits % 8)) // 8
        words = np.zeros((n_bytes + 3) // 4 + 2, dtype=np.uint32)
        for index, values in self.parts:
            # Within one part the indices are unique; parts may touch the same word, so OR them in turn.
            words[index] |= values
        return words.astype(">u4").view(np.uint8)[:n_bytes].copy()


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
