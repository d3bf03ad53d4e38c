"""Sprites: binary images of simple shapes over a full factorial grid of known factors.

A dataset whose factors of variation are known lets one measure how well a VAE's latent
variables separate them (disentanglement; e.g. the mutual information gap, Chen et al., 2018).
This one follows dSprites (Matthey et al., 2017) -- white shapes on black, every combination of
shape, scale, orientation and position exactly once -- but is generated here, with no download,
and is small: 12,168 images of 32 x 32 pixels, 50 MB as float32, drawn in a fraction of a
second. An epoch of npvae's default MLP VAE (1024-256-128-z) on its 9,734 training images takes
about a second on two cores.

The grid
--------
=============  ======  ==========================================================================
factor         levels  values (``sprite_factors()``)
=============  ======  ==========================================================================
shape          3       0 square, 1 ellipse, 2 triangle (``SHAPES``)
scale          4       0.5, 2/3, 5/6, 1: multipliers of the circumradius, 9 pixels at scale 1
orientation    6       0, 15, 30, 45, 60, 75 degrees (given in radians), counter-clockwise on screen
x              13      9.5, 10.5, ..., 21.5: the column of the sprite's centre
y              13      9.5, 10.5, ..., 21.5: the row of the sprite's centre (rows go down)
=============  ======  ==========================================================================

3 x 4 x 6 x 13 x 13 = 12,168 images. Image ``n`` of :func:`render_sprites` has the factor levels
``np.unravel_index(n, factor_sizes())``, the last factor (y) changing fastest; the image of given
levels is therefore row ``np.ravel_multi_index(levels, factor_sizes())``.

Positions are in pixel-index units: pixel ``(i, j)`` (row i, column j) has its centre at
``(i, j)``, so a centre at 9.5 lies on the corner between pixels 9 and 10 and the frame's centre
is (15.5, 15.5).

Why these levels
----------------
* Shapes. At scale 1 every shape has circumradius r = 9 pixels (its farthest point is 9 pixels
  from its centre): a square of side r * sqrt(2), an ellipse of semi-axes r and r / 2, an
  equilateral triangle of side r * sqrt(3). At orientation 0 the square's sides and the
  ellipse's long axis are horizontal and the triangle points up. All three are convex and
  have their centre of area at their centre, so an image's pixel centroid lies close to (y, x).
* Orientation. A square looks the same after a quarter turn, a triangle after a third, an
  ellipse after a half. Over a full turn the orientation of a square would name each image
  four times (dSprites has this ambiguity); a quarter turn, [0, 90) degrees, is within every
  shape's period, so no two orientations of one shape give the same shape. For the square the
  factor is circular: 75 degrees is as close to 0 as 15 is. Six levels, 15 degrees apart,
  because with eight (11.25 degrees apart) the smallest square at 0, 11.25 and 78.75 degrees
  rasterises to the same 6 x 6 block.
* Scale. A square with horizontal sides centred on a pixel corner always covers an even number
  of pixels across (the same number either side of its centre), so its side can only change in
  steps of 2 pixels; the half side, r / sqrt(2) = 3.2, 4.2, 5.3, 6.4 pixels, moves by more than
  one pixel per level, so every level gives a different square (sides 6, 8, 10, 12 pixels).
  Five levels in the same range would give two scales the same square. At scale 0.5 (r = 4.5)
  the upright square is 6 x 6 pixels, the ellipse 8 x 4 and the triangle 6 x 6: small, but
  still recognisable.
* Position. A sprite covers at most the 18 x 18 block around its centre (see below), which fits
  inside the frame without touching its outer rows and columns for centres 9.5 to 21.5: all
  13 of those, 1 pixel apart, in each direction. Moving the centre by a whole pixel shifts the
  same raster by one pixel, so the position factor is an exact translation.

Rasterisation
-------------
Each shape is an implicit function ``f(u, v)`` in its own frame (coordinates divided by the
circumradius, the shape unrotated, ``v`` up): negative inside, zero on the boundary, positive
outside. A point ``p`` of the image (its offset from the sprite's centre, with ``y`` flipped
to point up) is in the sprite rotated by ``theta`` where ``f(R(-theta) p / r) <= 0``.

* square: ``f = max(|u|, |v|) - 1 / sqrt(2)``;
* ellipse: ``f = u^2 + (2 v)^2 - 1``;
* triangle: ``f = max_a (u cos(a) + v sin(a)) - 1/2`` over the outward normals of its three
  edges, ``a`` = -90, 30 and 150 degrees (each edge lies at the inradius, r / 2, from the centre).

Each pixel is tested at 4 x 4 points (offsets +-1/8 and +-3/8 of a pixel from its centre): a
point scores 1 inside, 0 outside, and 1/2 on the boundary (``|f| <= 1e-9``), and the pixel is lit
when the score is more than half the points. This is a binary image close to the shape's true
coverage, and it does not depend on rounding. Some test points lie exactly on a boundary: the
45 degree square's edges, ``x +- y = +-r``, pass through many (r and the points' coordinates
are multiples of 1/8), the 45 degree ellipse through a few, and there a plain ``f <= 0`` would be
decided by the last bit of cos(pi / 4). Every other point of the grid has ``|f| > 9e-6``.

The points come in pairs symmetric about the pixel's centre. When that centre is outside a
convex shape or on its boundary, all of the shape lies on one side of a line through the centre,
so of each pair at most one point is inside, or both are on that line and score 1/2 each: the
score is at most half and the pixel stays dark. So a lit pixel always has its centre strictly
inside the shape, within r of the sprite's centre. With the sprite's centre on a pixel corner,
that is the 2 * ceil(r) square block of pixels around it, which :func:`draw_sprite` renders, once
per (shape, scale, orientation); :func:`render_sprites` copies it to each position.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

SHAPES = ("square", "ellipse", "triangle")
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
IMAGE_SIZE = 32  # pixels a side
RADIUS = 9.0  # circumradius of every shape at scale 1, in pixels
SCALES = (0.5, 2 / 3, 5 / 6, 1.0)
N_ORIENTATIONS = 6  # over a quarter turn, [0, pi / 2)
POSITIONS = tuple(9.5 + k for k in range(13))  # centres, in pixel-index units, for x and y alike
SUPERSAMPLING = 4  # test points per pixel along each axis
ON_BOUNDARY = 1e-9  # |f| up to this counts as on the boundary (rounding errors are ~1e-16)

# Outward normals of the triangle's edges (radians); the edges lie at 1/2 from its centre.
_TRIANGLE_NORMALS = (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)


def sprite_factors() -> Tuple[Tuple[str, ...], Tuple[np.ndarray, ...]]:
    """The factors of the sprites grid: their names and the value of each level.

    Returns
    -------
    names : tuple of str
        ``("shape", "scale", "orientation", "x", "y")``.
    values : tuple of 1-D float64 arrays
        One array per factor, in the order of `names`: the shape index (0, 1, 2 for
        ``SHAPES``), the scale multiplier of the circumradius, the angle in radians
        (counter-clockwise on screen), and the column (x) and row (y) of the sprite's
        centre in pixel-index units.
    """
    angles = np.arange(N_ORIENTATIONS) * (math.pi / 2) / N_ORIENTATIONS
    values = (np.arange(len(SHAPES), dtype=np.float64), np.array(SCALES), angles,
              np.array(POSITIONS), np.array(POSITIONS))
    return FACTOR_NAMES, values


def factor_sizes() -> Tuple[int, ...]:
    """The number of levels of each factor, in the order of FACTOR_NAMES: (3, 4, 6, 13, 13)."""
    return tuple(len(v) for v in sprite_factors()[1])


def shape_function(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The implicit function of a shape of circumradius 1, unrotated, centred at the origin.

    Parameters
    ----------
    shape : int
        Index into SHAPES: 0 square, 1 ellipse, 2 triangle.
    u, v : arrays of the same shape
        Coordinates of the points, u to the right and v up.

    Returns
    -------
    array of float64, the shape of `u`
        f(u, v): negative inside the shape, zero on its boundary, positive outside.
    """
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) - 1 / math.sqrt(2)
    if shape == 1:
        return u**2 + (2 * v) ** 2 - 1
    if shape == 2:
        return np.maximum.reduce([u * math.cos(a) + v * math.sin(a) for a in _TRIANGLE_NORMALS]) - 0.5
    raise ValueError(f"shape must be an index into {SHAPES} (0 to {len(SHAPES) - 1}), got {shape!r}")


def draw_sprite(shape: int, radius: float, angle: float, size: int) -> np.ndarray:
    """One sprite, centred on the middle corner of a `size` x `size` patch, as 0/1 floats.

    Parameters
    ----------
    shape : int
        Index into SHAPES.
    radius : float
        The circumradius in pixels (> 0).
    angle : float
        The rotation in radians, counter-clockwise on screen.
    size : int
        Pixels a side of the patch, even, at least 2 * ceil(radius) for the whole sprite to fit.

    Returns
    -------
    array of float64, shape (size, size)
        1 where a pixel's 4 x 4 test points score more than half (1 inside, 1/2 on the
        boundary), else 0.
    """
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    if size % 2 or not 2 <= size <= 4 * IMAGE_SIZE:
        raise ValueError(f"size must be an even number of pixels from 2 to {4 * IMAGE_SIZE}, got {size!r}")
    sub = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING - 0.5  # (S,) offsets within a pixel
    centres = np.arange(size) - (size - 1) / 2  # (size,) pixel centres relative to the sprite's
    dx = (centres[:, None] + sub[None, :]).reshape(-1)  # (size * S,) test points along an axis
    x = dx[None, :]  # (1, size * S): to the right
    y = -dx[:, None]  # (size * S, 1): up (rows go down)
    c, s = math.cos(angle), math.sin(angle)
    u = (c * x + s * y) / radius  # R(-angle) applied to (x, y), in units of the radius
    v = (-s * x + c * y) / radius
    f = shape_function(shape, u, v)
    twice_score = np.where(f < -ON_BOUNDARY, 2, np.where(f <= ON_BOUNDARY, 1, 0))  # inside, on, out
    twice_score = twice_score.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).sum(axis=(1, 3))
    return (twice_score > SUPERSAMPLING**2).astype(np.float64)  # score > half the points


def render_sprites(dtype=np.float32) -> Tuple[np.ndarray, np.ndarray]:
    """Every image of the grid, in factorial order, with its factor levels. Deterministic.

    Parameters
    ----------
    dtype : numpy floating dtype
        The dtype of the images.

    Returns
    -------
    images : array of `dtype`, shape (N, 1024)
        N = 12,168 binary images (0 or 1), each a 32 x 32 frame flattened row by row.
    levels : array of int64, shape (N, 5)
        The level index of each factor (shape, scale, orientation, x, y) of each image: row n
        is ``np.unravel_index(n, factor_sizes())``, so every combination occurs once.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    _, (_, scales, angles, xs, ys) = sprite_factors()
    sizes = factor_sizes()
    n_sprites = math.prod(sizes[:3])
    size = 2 * math.ceil(RADIUS * scales.max())
    patches = np.stack([draw_sprite(k, RADIUS * scale, angle, size)
                        for k in range(len(SHAPES)) for scale in scales for angle in angles])
    frames = np.zeros((n_sprites, len(xs), len(ys), IMAGE_SIZE, IMAGE_SIZE), dtype=dtype)
    for i, x in enumerate(xs):
        left = int(x - (size - 1) / 2)  # the patch's first column; x - (size - 1)/2 is whole
        for j, y in enumerate(ys):
            top = int(y - (size - 1) / 2)
            frames[:, i, j, top:top + size, left:left + size] = patches
    levels = np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1).astype(np.int64)
    return frames.reshape(len(levels), IMAGE_SIZE * IMAGE_SIZE), levels
