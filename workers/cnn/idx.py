"""MNIST-style IDX files (plain or .gz): header checks and reading into numpy arrays.

An IDX file starts with two zero bytes, a type code (0x08 = unsigned byte) and the number of
dimensions, then one big-endian uint32 per dimension, then the data.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from shared.errors import InvalidParameter

_UBYTE = 0x08


def _open(path: Path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def read_header(path: Path) -> tuple[int, ...]:
    """The dimensions of an IDX file of unsigned bytes; InvalidParameter on a wrong magic number."""
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != _UBYTE or not 1 <= head[3] <= 4:
                raise InvalidParameter(f"{path}: not an IDX file of unsigned bytes (wrong magic number "
                                       f"{head.hex() or 'empty'}; expected 000008xx)")
            dims = f.read(4 * head[3])
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise InvalidParameter(f"{path}: cannot be read as IDX ({e})") from None
    if len(dims) < 4 * head[3]:
        raise InvalidParameter(f"{path}: truncated IDX header")
    return tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))


def read(path: Path) -> np.ndarray:
    """The whole array (uint8, shaped by the header); InvalidParameter if the body is truncated or too long."""
    dims = read_header(path)
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise InvalidParameter(f"{path}: cannot be read as IDX ({e})") from None
    start = 4 + 4 * len(dims)
    want = int(np.prod(dims))
    have = len(raw) - start
    if have != want:
        raise InvalidParameter(f"{path}: truncated IDX body ({have} bytes for {'x'.join(map(str, dims))} = {want})"
                               if have < want else f"{path}: {have - want} bytes after the IDX body")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def check_size(path: Path) -> tuple[int, ...]:
    """Header dimensions, and (for uncompressed files, cheaply) that the body length matches them."""
    dims = read_header(path)
    if not str(path).endswith(".gz"):
        want = 4 + 4 * len(dims) + int(np.prod(dims))
        have = Path(path).stat().st_size
        if have < want:
            raise InvalidParameter(f"{path}: truncated IDX body ({have} bytes, the header promises {want})")
    else:
        read(path)  # a .gz has to be decompressed to know its length
    return dims


def write(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzip-compressed when ``path`` ends in .gz): used by tests and demos."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, _UBYTE, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes() + a.tobytes()
    with _open_w(path) as f:
        f.write(data)


def _open_w(path: Path):
    return gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb")
