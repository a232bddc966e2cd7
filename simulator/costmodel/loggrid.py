"""A quantity tabulated on log-spaced axes and interpolated linearly in log space.

Kernel efficiencies vary smoothly with the logarithm of their sizes (tokens, weight
dimensions, sequence length): a GEMM at few tokens is bandwidth-bound, so its FLOP
efficiency grows in proportion to the tokens (a straight line in log-log), then
saturates. ``LogGrid`` holds such a quantity at the nodes of a grid of one to three axes
and interpolates ``log(value)`` linearly in ``log(coordinate)``, clamped at the ends.
``fit_log_grid`` finds the node values from scattered measurements by regularised least
squares (a small second-difference penalty fills nodes that no measurement reaches).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

#: Weight of the second-difference penalty per node, relative to one measured row.
SMOOTHNESS = 0.05
#: Significant digits written to YAML (interpolation error dwarfs the rounding).
DIGITS = 4


@dataclass(frozen=True)
class LogGrid:
    """``values`` at every combination of ``axes`` nodes (positive, ascending)."""

    names: tuple[str, ...]
    axes: tuple[tuple[float, ...], ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(len(a) for a in self.axes)
        if len(self.names) != len(self.axes) or self.values.shape != shape:
            raise ValueError(f"grid of shape {self.values.shape} does not match axes {shape}")
        for name, axis in zip(self.names, self.axes, strict=True):
            if min(axis) <= 0 or any(b <= a for a, b in pairwise(axis)):
                raise ValueError(f"axis {name}: nodes must be positive and ascending")
        if not np.all(np.isfinite(self.values)) or np.any(self.values <= 0):
            raise ValueError("grid values must be positive and finite")
        object.__setattr__(self, "_log_axes", tuple(tuple(map(math.log, a)) for a in self.axes))
        object.__setattr__(self, "_log_values", np.log(self.values))
        object.__setattr__(self, "_flat", np.log(self.values).ravel().tolist())
        strides = np.cumprod((1, *reversed(shape[1:])))[::-1]
        object.__setattr__(self, "_strides", tuple(int(s) for s in strides))

    # --- evaluation ------------------------------------------------------------------------
    def __call__(self, *coords: float) -> float:
        """The value at one point (scalar, pure Python: the cost model's hot path)."""
        terms = [(0, 1.0)]
        for x, axis, stride in zip(coords, self._log_axes, self._strides, strict=True):
            if len(axis) == 1:
                continue
            lx = math.log(x) if x > 0 else axis[0]
            i = min(max(bisect_right(axis, lx) - 1, 0), len(axis) - 2)
            w = (lx - axis[i]) / (axis[i + 1] - axis[i])
            w = 0.0 if w < 0.0 else 1.0 if w > 1.0 else w
            low, high = i * stride, (i + 1) * stride
            terms = [(o + low, p * (1 - w)) for o, p in terms] + [
                (o + high, p * w) for o, p in terms
            ]
        flat = self._flat
        return math.exp(sum(flat[o] * p for o, p in terms))

    def along_first(self, *rest: float) -> tuple[np.ndarray, np.ndarray]:
        """(log of the first axis's nodes, log of the values there) with the other
        coordinates fixed at ``rest``: the grid as a curve of its first coordinate, for
        ``np.interp`` over many points that differ only in it (exact: the interpolation is
        linear in each axis)."""
        values = self._log_values
        for x, axis in zip(rest, self._log_axes[1:], strict=True):
            if len(axis) == 1:
                values = values[:, 0]
                continue
            lx = math.log(x) if x > 0 else axis[0]
            i = min(max(bisect_right(axis, lx) - 1, 0), len(axis) - 2)
            w = min(max((lx - axis[i]) / (axis[i + 1] - axis[i]), 0.0), 1.0)
            values = values[:, i] * (1.0 - w) + values[:, i + 1] * w
        return np.asarray(self._log_axes[0]), values

    def many(self, *coords: np.ndarray | float) -> np.ndarray:
        """Values at many points (numpy broadcasting over the coordinates)."""
        arrays = np.broadcast_arrays(*(np.asarray(c, dtype=np.float64) for c in coords))
        corners = [(np.zeros(arrays[0].shape, dtype=np.int64), np.ones(arrays[0].shape))]
        for x, axis, stride in zip(arrays, self._log_axes, self._strides, strict=True):
            if len(axis) == 1:
                continue
            la = np.asarray(axis)
            lx = np.log(np.clip(x, math.exp(la[0]), math.exp(la[-1])))
            i = np.clip(np.searchsorted(la, lx, side="right") - 1, 0, len(la) - 2)
            w = np.clip((lx - la[i]) / (la[i + 1] - la[i]), 0.0, 1.0)
            corners = [(o + i * stride, p * (1 - w)) for o, p in corners] + [
                (o + (i + 1) * stride, p * w) for o, p in corners
            ]
        flat = self._log_values.ravel()
        return np.exp(sum(flat[o] * p for o, p in corners))

    # --- YAML ------------------------------------------------------------------------------
    def to_dict(self, value_name: str = "efficiency") -> dict:
        return {
            "axes": {n: [_round(v) for v in a] for n, a in zip(self.names, self.axes, strict=True)},
            value_name: _round_nested(self.values.tolist()),
        }

    @classmethod
    def from_dict(cls, data: dict, value_name: str = "efficiency") -> LogGrid:
        axes = data["axes"]
        names = tuple(axes)
        return cls(
            names,
            tuple(tuple(float(v) for v in axes[n]) for n in names),
            np.asarray(data[value_name], dtype=np.float64),
        )


def _round(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def _round_nested(values):
    if isinstance(values, list):
        return [_round_nested(v) for v in values]
    return _round(values)


def multilinear_weights(
    log_axes: Sequence[np.ndarray], log_coords: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(flat node index, weight) of the 2^d corners of every point: arrays (points, 2^d)."""
    shape = tuple(len(a) for a in log_axes)
    strides = np.cumprod((1, *reversed(shape[1:])))[::-1]
    n = len(log_coords[0])
    idx, wts = np.zeros((n, 1), dtype=np.int64), np.ones((n, 1))
    for la, lx, stride in zip(log_axes, log_coords, strides, strict=True):
        if len(la) == 1:
            continue
        lx = np.clip(lx, la[0], la[-1])
        i = np.clip(np.searchsorted(la, lx, side="right") - 1, 0, len(la) - 2)
        w = ((lx - la[i]) / (la[i + 1] - la[i]))[:, None]
        idx = np.concatenate([idx + (i * stride)[:, None], idx + ((i + 1) * stride)[:, None]], 1)
        wts = np.concatenate([wts * (1 - w), wts * w], 1)
    return idx, wts


def fit_log_grid(
    names: Sequence[str],
    axes: Sequence[Sequence[float]],
    coords: Sequence[np.ndarray],
    values: np.ndarray,
    smoothness: float = SMOOTHNESS,
) -> LogGrid:
    """The grid whose interpolation best matches ``values`` at ``coords`` (least squares of
    log values), with a second-difference penalty along every axis."""
    from scipy.sparse import coo_matrix, vstack

    log_axes = [np.log(np.asarray(a, dtype=np.float64)) for a in axes]
    log_coords = [np.log(np.asarray(c, dtype=np.float64)) for c in coords]
    shape = tuple(len(a) for a in axes)
    size = int(np.prod(shape))
    idx, wts = multilinear_weights(log_axes, log_coords)
    rows = np.repeat(np.arange(len(values)), idx.shape[1])
    design = coo_matrix((wts.ravel(), (rows, idx.ravel())), shape=(len(values), size))
    blocks = [design]
    nodes = np.arange(size).reshape(shape)
    for axis in range(len(shape)):
        if shape[axis] < 3:
            continue
        a = np.moveaxis(nodes, axis, 0)
        left, mid, right = a[:-2].ravel(), a[1:-1].ravel(), a[2:].ravel()
        k = len(mid)
        r = np.repeat(np.arange(k), 3)
        c = np.stack([left, mid, right], 1).ravel()
        v = np.tile([smoothness, -2 * smoothness, smoothness], k)
        blocks.append(coo_matrix((v, (r, c)), shape=(k, size)))
    matrix = vstack(blocks).tocsr()
    rhs = np.zeros(matrix.shape[0])
    rhs[: len(values)] = np.log(np.asarray(values, dtype=np.float64))
    # Normal equations: a few thousand nodes at most, so a dense solve is exact and fast.
    normal = (matrix.T @ matrix).toarray()
    normal += 1e-9 * np.eye(size)  # nodes no row or penalty reaches stay finite
    solution = np.linalg.solve(normal, matrix.T @ rhs)
    return LogGrid(
        tuple(names),
        tuple(tuple(float(v) for v in a) for a in axes),
        np.exp(solution).reshape(shape),
    )
