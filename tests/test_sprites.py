"""Tests for npvae.data.sprites and load_dataset("sprites"): the factorial grid, what the factor
levels do to the images, and the seeded split that carries the factors along."""
from __future__ import annotations

import math

import numpy as np
import pytest

from npvae.data import (
    KNOWN_DATASETS,
    SHAPES,
    draw_sprite,
    factor_sizes,
    load_dataset,
    render_sprites,
    sprite_factors,
)
from npvae.data import datasets as data_datasets
from npvae.data.sprites import RADIUS, shape_function

SIZES = (3, 4, 6, 13, 13)  # shape, scale, orientation, x, y
N = math.prod(SIZES)  # 12,168
CENTRE = 6  # the x and y level whose sprite centre, 15.5, is the frame's centre


@pytest.fixture(scope="module")
def grid():
    """Every image as a (N, 32, 32) float64 stack, and its factor levels (N, 5)."""
    x, levels = render_sprites()
    return x.reshape(-1, 32, 32).astype(np.float64), levels


@pytest.fixture(scope="module")
def measures(grid):
    """Per image: lit pixel count, centroid column and row, and its factor values by name."""
    images, levels = grid
    names, values = sprite_factors()
    count = images.sum(axis=(1, 2))
    index = np.arange(32)
    col = images.sum(axis=1) @ index / count
    row = images.sum(axis=2) @ index / count
    value = {name: values[k][levels[:, k]] for k, name in enumerate(names)}
    return count, col, row, value


def by_factor(a):
    """A per-image array reshaped to the grid: (shape, scale, orientation, x, y)."""
    return np.asarray(a).reshape(SIZES)


# =========================================================================== the grid


def test_every_combination_of_levels_occurs_once_in_factorial_order(grid):
    images, levels = grid
    assert images.shape == (N, 32, 32) and levels.shape == (N, 5) and levels.dtype == np.int64
    assert factor_sizes() == SIZES
    for k, size in enumerate(SIZES):
        assert set(np.unique(levels[:, k])) == set(range(size))
    assert len(np.unique(levels, axis=0)) == N  # N distinct rows out of N combinations: all of them
    # the last factor (y) changes fastest, the first (shape) slowest
    np.testing.assert_array_equal(levels[0], [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(levels[1], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(levels[13], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(levels[13 * 13], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(levels[N // 3], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(levels[-1], np.array(SIZES) - 1)


def test_factor_names_and_values():
    names, values = sprite_factors()
    assert names == ("shape", "scale", "orientation", "x", "y")
    assert tuple(len(v) for v in values) == SIZES
    assert all(v.ndim == 1 and v.dtype == np.float64 for v in values)
    np.testing.assert_array_equal(values[0], [0, 1, 2])
    assert len(SHAPES) == 3
    np.testing.assert_allclose(values[1], [0.5, 2 / 3, 5 / 6, 1.0])
    np.testing.assert_allclose(values[2], np.radians([0, 15, 30, 45, 60, 75]))
    np.testing.assert_allclose(values[3], 9.5 + np.arange(13))
    np.testing.assert_allclose(values[4], 9.5 + np.arange(13))


def test_images_are_binary_nonempty_and_distinct(grid):
    images, _ = grid
    assert set(np.unique(images)) == {0.0, 1.0}
    assert images.sum(axis=(1, 2)).min() > 0
    packed = np.packbits(images.reshape(N, -1).astype(bool), axis=1)
    assert len(np.unique(packed, axis=0)) == N


def test_rendering_is_deterministic_and_keeps_the_dtype(grid):
    x, levels = render_sprites(np.float64)
    assert x.dtype == np.float64 and x.shape == (N, 1024)
    np.testing.assert_array_equal(x.reshape(-1, 32, 32), grid[0])
    np.testing.assert_array_equal(levels, grid[1])


# =========================================================================== the factors in the images


def test_sprites_stay_inside_the_frame(grid, measures):
    images, _ = grid
    assert not images[:, [0, -1], :].any() and not images[:, :, [0, -1]].any()
    # every lit pixel's centre is within the circumradius of the sprite's centre
    _, _, _, value = measures
    index = np.arange(32)
    for k in range(3):  # a shape at a time, to keep the arrays small
        m = np.flatnonzero(value["shape"] == k)
        dist2 = ((index[None, :, None] - value["y"][m, None, None]) ** 2
                 + (index[None, None, :] - value["x"][m, None, None]) ** 2)
        radius = RADIUS * value["scale"][m, None, None]
        assert np.all((dist2 <= radius**2) | (images[m] == 0))


def test_the_grid_matches_each_sprite_drawn_on_a_whole_frame(grid):
    # At the central position the sprite's centre is the frame's, so the grid's image must be the
    # sprite drawn directly on a 32 x 32 patch: nothing clipped, nothing misplaced.
    images, _ = grid
    _, (_, scales, angles, _, _) = sprite_factors()
    images = images.reshape(SIZES + (32, 32))
    for k in range(3):
        for s, scale in enumerate(scales):
            for o, angle in enumerate(angles):
                whole = draw_sprite(k, RADIUS * scale, angle, 32)
                np.testing.assert_array_equal(images[k, s, o, CENTRE, CENTRE], whole, err_msg=f"{k, s, o}")


def test_moving_a_level_shifts_the_same_raster_by_a_pixel(grid):
    images = grid[0].reshape(SIZES + (32, 32))
    centre = images[:, :, :, CENTRE, CENTRE]  # (3, 4, 6, 32, 32)
    for i in range(SIZES[3]):
        for j in range(SIZES[4]):
            shifted = np.roll(centre, (j - CENTRE, i - CENTRE), axis=(-2, -1))  # rows by y, columns by x
            np.testing.assert_array_equal(images[:, :, :, i, j], shifted, err_msg=f"x level {i}, y level {j}")


def test_lit_pixels_are_those_mostly_inside_the_shape(grid):
    # Lit pixels have their centre strictly inside the shape (what the symmetric test points and
    # the strict majority rule give for a convex shape), and pixels wholly inside it are lit.
    images = grid[0].reshape(SIZES + (32, 32))[:, :, :, CENTRE, CENTRE]
    _, (_, scales, angles, _, _) = sprite_factors()
    offsets = np.arange(32) - 15.5  # pixel centres relative to the sprite's, which is the frame's
    points = [(0, 0), (-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)]  # centre, then corners
    for k in range(3):
        for s, scale in enumerate(scales):
            for o, angle in enumerate(angles):
                c, sn, r = math.cos(angle), math.sin(angle), RADIUS * scale
                f = []
                for dy, dx in points:
                    x = (offsets + dx)[None, :]
                    y = -(offsets + dy)[:, None]  # up
                    f.append(shape_function(k, (c * x + sn * y) / r, (-sn * x + c * y) / r))
                lit = images[k, s, o] > 0
                assert np.all((f[0] < 0) | ~lit), f"a lit pixel's centre is not inside: {k, s, o}"
                wholly_inside = np.all(np.array(f[1:]) <= 0, axis=0)  # its four corners are
                assert np.all(lit | ~wholly_inside), f"a pixel inside is dark: {k, s, o}"


def test_rasterisation_does_not_hang_on_rounding(grid):
    # Test points exactly on an edge (the 45 degree square has many) score 1/2 whichever way
    # rounding goes, so nudging the size or the angle by 1e-12 changes no pixel.
    images = grid[0].reshape(SIZES + (32, 32))[:, :, :, CENTRE, CENTRE]
    _, (_, scales, angles, _, _) = sprite_factors()
    for k in range(3):
        for s, scale in enumerate(scales):
            for o, angle in enumerate(angles):
                for dr, da in ((1e-12, 0), (-1e-12, 0), (0, 1e-12), (0, -1e-12)):
                    nudged = draw_sprite(k, RADIUS * scale * (1 + dr), angle + da, 32)
                    np.testing.assert_array_equal(nudged, images[k, s, o], err_msg=f"{k, s, o, dr, da}")


def test_centroid_follows_x_and_y(measures):
    _, col, row, value = measures
    # x is the column and y the row of the sprite's centre; the square and the ellipse are
    # symmetric about it, the rasterised triangle within a third of a pixel
    assert np.abs(col - value["x"]).max() <= 0.34 and np.abs(row - value["y"]).max() <= 0.34
    # one level right moves the sprite one pixel right and not up or down, and so for y
    col, row = by_factor(col), by_factor(row)
    np.testing.assert_allclose(np.diff(col, axis=3), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(row, axis=3), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(row, axis=4), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(col, axis=4), 0.0, atol=1e-9)


def test_area_grows_with_scale_as_the_square_of_the_radius(measures):
    count, _, _, value = measures
    assert np.all(np.diff(by_factor(count), axis=1) > 0)
    r = RADIUS * value["scale"]
    true_area = r**2 * np.array([2.0, math.pi / 2, 3 * math.sqrt(3) / 4])[value["shape"].astype(int)]
    # pixel counts are within 20% of the true areas (the worst: the smallest ellipse)
    assert np.abs(count / true_area - 1).max() < 0.2


def bounding_box(image):
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def test_each_shape_looks_like_itself(grid):
    images = grid[0].reshape(SIZES + (32, 32))
    for s in range(4):
        square, ellipse, triangle = (bounding_box(images[k, s, 0, CENTRE, CENTRE]) for k in range(3))
        # upright square: a full block, as wide as high, sides 6, 8, 10, 12
        assert square.all() and square.shape == (6 + 2 * s, 6 + 2 * s)
        # ellipse with its long axis horizontal: twice as wide as high, corners dark
        height, width = ellipse.shape
        assert 1.6 <= width / height <= 2.4 and not ellipse[[0, 0, -1, -1], [0, -1, 0, -1]].any()
        # triangle pointing up: rows widen downwards, to a base at least as wide as it is high
        # (sqrt 3 to 1.5, before rounding)
        widths = triangle.sum(axis=1)
        assert np.all(np.diff(widths) >= 0) and 2 * widths[0] < widths[-1]
        assert triangle.shape[0] <= widths[-1] == triangle.shape[1]
        # a sixth of a turn turns the triangle upside down
        down = bounding_box(images[2, s, 4, CENTRE, CENTRE]).sum(axis=1)
        assert np.all(np.diff(down) <= 0) and 2 * down[-1] < down[0]


def test_orientation_turns_the_ellipse_counter_clockwise(grid, measures):
    images, _ = grid
    count, col, row, value = measures
    m = np.flatnonzero(value["shape"] == 1)
    index = np.arange(32)
    u = index[None, None, :] - col[m, None, None]  # to the right
    v = -(index[None, :, None] - row[m, None, None])  # up
    g = images[m]
    suu, svv, suv = ((g * a * b).sum(axis=(1, 2)) / count[m] for a, b in ((u, u), (v, v), (u, v)))
    long_axis = 0.5 * np.arctan2(2 * suv, suu - svv)  # angle of the principal axis
    assert np.degrees(np.abs(long_axis - value["orientation"][m])).max() < 6


def test_draw_sprite_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shape must be an index"):
        draw_sprite(3, 5.0, 0.0, 18)
    with pytest.raises(ValueError, match="radius must be positive"):
        draw_sprite(0, 0.0, 0.0, 18)
    with pytest.raises(ValueError, match="size must be an even number"):
        draw_sprite(0, 5.0, 0.0, 17)
    with pytest.raises(ValueError, match="size must be an even number"):
        draw_sprite(0, 5.0, 0.0, 10**6)
    with pytest.raises(ValueError, match="dtype must be a floating type"):
        render_sprites(np.int64)


# =========================================================================== load_dataset("sprites")


@pytest.fixture(scope="module")
def sprites():
    return load_dataset("sprites", seed=3)


def test_load_dataset_splits_the_grid_with_the_factors(grid, sprites):
    ds = sprites
    assert ds.name == "sprites" and ds.image_shape == (32, 32) and "generated" in ds.source
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape[1] == 1024
    assert len(ds.x_test) == round(N * 0.2) and len(ds.x_train) + len(ds.x_test) == N
    assert ds.factors_train.dtype == np.int64 and ds.factors_train.shape == (len(ds.x_train), 5)
    assert ds.factors_test.shape == (len(ds.x_test), 5)
    assert ds.factor_names == ("shape", "scale", "orientation", "x", "y")
    for got, want in zip(ds.factor_values, sprite_factors()[1]):
        np.testing.assert_array_equal(got, want)
    # every combination lands in exactly one part
    both = np.concatenate([ds.factors_train, ds.factors_test])
    assert len(np.unique(both, axis=0)) == N
    # the labels are the shape, in equal shares in the test part (stratified split)
    np.testing.assert_array_equal(ds.y_train, ds.factors_train[:, 0])
    np.testing.assert_array_equal(ds.y_test, ds.factors_test[:, 0])
    assert np.bincount(ds.y_test).max() - np.bincount(ds.y_test).min() <= 1
    # each row's factors are those of its image
    flat = grid[0].reshape(N, -1)
    for x, f in ((ds.x_train, ds.factors_train), (ds.x_test, ds.factors_test)):
        np.testing.assert_array_equal(x, flat[np.ravel_multi_index(f.T, SIZES)])
    # the split shuffles: the images are not in the grid's order
    assert np.any(np.diff(np.ravel_multi_index(ds.factors_train.T, SIZES)) < 0)


def test_load_dataset_is_deterministic_in_its_seed(sprites):
    again = load_dataset("sprites", seed=3)
    for a in ("x_train", "y_train", "x_test", "y_test", "factors_train", "factors_test"):
        np.testing.assert_array_equal(getattr(again, a), getattr(sprites, a))
    other = load_dataset("sprites", seed=4)
    assert not np.array_equal(other.factors_test, sprites.factors_test)
    half = load_dataset("sprites", seed=3, test_fraction=0.5, dtype=np.float64)
    assert len(half.x_test) == N // 2 and half.x_test.dtype == np.float64


def test_load_time_binarisation_keeps_the_images_and_factors(sprites):
    for mode in ("threshold", "static"):
        ds = load_dataset("sprites", seed=3, binarize=mode)
        np.testing.assert_array_equal(ds.x_train, sprites.x_train)
        np.testing.assert_array_equal(ds.x_test, sprites.x_test)
        np.testing.assert_array_equal(ds.factors_train, sprites.factors_train)
        assert ds.factor_names == sprites.factor_names and ds.name == "sprites"
    with pytest.raises(ValueError, match="per-batch"):
        load_dataset("sprites", binarize="dynamic")


def test_names_and_the_other_datasets():
    assert "sprites" in KNOWN_DATASETS
    for name in ("Sprites", " SPRITES ", "sprites"):
        assert data_datasets._canonical_name(name) == "sprites"
    with pytest.raises(ValueError, match="unknown dataset 'sprite'.*sprites"):
        load_dataset("sprite")
    digits = load_dataset("digits")
    assert digits.factors_train is None and digits.factors_test is None
    assert digits.factor_names == () and digits.factor_values == ()
