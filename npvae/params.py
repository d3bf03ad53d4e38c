"""One flat buffer holding many named arrays.

Every parameter of a model is a view into one contiguous 1-D array, and so is every
gradient. The optimizer, gradient clipping and the gradient checker then each run once
over one array, while `model.params["encoder.0.W"]` keeps its name and shape; writing into
that view writes into the buffer.
"""
from __future__ import annotations

import numpy as np


class FlatBuffer:
    """`flat` is a zeroed 1-D array; `views[name]` is the slice of it shaped `shape`."""

    def __init__(self, shapes, dtype):
        self.shapes = [(name, tuple(shape)) for name, shape in shapes]
        total = sum(int(np.prod(shape)) for _, shape in self.shapes)
        self.flat = np.zeros(total, dtype=dtype)
        self.views = {}
        self.offsets = {}
        offset = 0
        for name, shape in self.shapes:
            n = int(np.prod(shape))
            self.views[name] = self.flat[offset:offset + n].reshape(shape)
            self.offsets[name] = (offset, offset + n)
            offset += n
