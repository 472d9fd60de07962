"""The IDX reader the Python benchmark scripts share (MNIST format, gzip or
plain, u8 elements): `read(path)` gives a numpy array shaped as the header says."""
import gzip
import struct

import numpy as np


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    return np.frombuffer(data[4 + 4 * rank :], dtype=np.uint8).reshape(dims)
