"""One flat buffer holding many named arrays.

Every parameter of a model is a view into one contiguous 1-D array, and so is every
gradient. The optimizer, gradient clipping and the gradient checker then each run once
over one array, while `model.params["encoder.0.W"]` keeps its name and shape; writing into
that view writes into the buffer. A buffer's size is checked against npvae's parameter
cap (npvae.limits) before anything is allocated, so a model asking for 10^12 parameters
is refused with a message giving the count, not with a MemoryError.
"""
from __future__ import annotations

import math

import numpy as np

from .limits import check_params


class FlatBuffer:
    """`flat` is a zeroed 1-D array; `views[name]` is the slice of it shaped `shape`."""

    def __init__(self, shapes, dtype):
        self.shapes = [(name, tuple(int(s) for s in shape)) for name, shape in shapes]
        total = sum(math.prod(shape) for _, shape in self.shapes)  # exact: Python ints
        check_params(total, np.dtype(dtype).itemsize)
        self.flat = np.zeros(total, dtype=dtype)
        self.views = {}
        self.offsets = {}
        offset = 0
        for name, shape in self.shapes:
            n = math.prod(shape)
            self.views[name] = self.flat[offset:offset + n].reshape(shape)
            self.offsets[name] = (offset, offset + n)
            offset += n


class Workspace:
    """Arrays a block reuses from call to call, by name.

    `get(name, shape, dtype)` returns the array kept under `name` when its shape and dtype
    match, and otherwise replaces it with a new one; so a training step at a fixed batch
    shape allocates nothing after its first call, and a block holds one array per name (a
    different batch size, such as an epoch's smaller last batch, costs one allocation).
    The contents are whatever the last user left: the caller overwrites them.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype):
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._arrays[name] = np.empty(shape, dtype)
        return a
