"""Golden model of the systolic array (``hw/array.py``) and of how GEMMs are streamed through it.

A GEMM ``Y = A·B`` (``A`` is M×K, ``B`` is K×N) runs as a sequence of R×C output tiles, row tiles
outermost. Each tile is a stream of K *steps*: step ``k`` carries column ``k`` of the ``A`` tile and
row ``k`` of the ``B`` tile, read from flat buffers by address arithmetic. An operand is
*transposed by how it is read*: a buffer holding a P×Q matrix ``S`` row-major serves as ``S`` (stride
``Q`` down, 1 across) or as ``Sᵀ`` (1 down, ``Q`` across), so ``Wᵀ·dZ`` and ``dZ·Aᵀ`` need no
transpose pass. Rows and columns beyond the matrix edge read as zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Steps", "operand", "gemm_steps", "array_model", "assemble", "gemm"]


@dataclass
class Steps:
    """A stream of array steps: ``a`` (T×R), ``b`` (T×C), ``first`` and ``last`` (T,)."""

    a: np.ndarray
    b: np.ndarray
    first: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.first)

    @staticmethod
    def concat(parts: list[Steps]) -> Steps:
        return Steps(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in ("a", "b", "first", "last")))


def operand(rows: int, cols: int, transposed: bool) -> np.ndarray:
    """Buffer addresses of the elements of a ``rows × cols`` operand.

    Not transposed: the buffer holds the operand row-major. Transposed: the buffer holds its
    transpose (``cols × rows``) row-major.
    """
    down, across = (1, rows) if transposed else (cols, 1)
    return np.arange(rows)[:, None] * down + np.arange(cols)[None, :] * across


def _read(buffer: np.ndarray, addresses: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, buffer[np.where(valid, addresses, 0)], 0).astype(np.int64)


def gemm_steps(buf_a: np.ndarray, buf_b: np.ndarray, m: int, k: int, n: int,
               trans_a: bool, trans_b: bool, rows: int, cols: int,
               first: bool = True) -> Steps:
    """The steps that compute ``A·B`` tile by tile from buffers ``buf_a`` and ``buf_b``.

    Every tile starts a new sum unless ``first`` is false (then it adds to the sums in the cells).
    """
    addr_a, addr_b = operand(m, k, trans_a), operand(k, n, trans_b)
    parts = []
    for i0 in range(0, m, rows):
        for j0 in range(0, n, cols):
            i, j = np.arange(i0, i0 + rows), np.arange(j0, j0 + cols)
            a = _read(buf_a, addr_a[np.minimum(i, m - 1)].T, (i < m)[None, :])
            b = _read(buf_b, addr_b[:, np.minimum(j, n - 1)], (j < n)[None, :])
            step = np.arange(k)
            parts.append(Steps(a, b, (step == 0) & first, step == k - 1))
    return Steps.concat(parts)


def array_model(steps: Steps, rows: int, cols: int) -> np.ndarray:
    """The rows the array emits for ``steps``: one R×C block per ``last`` step, stacked."""
    acc = np.zeros((rows, cols), dtype=np.int64)
    out = []
    for a, b, first, last in zip(steps.a, steps.b, steps.first, steps.last, strict=True):
        acc = (0 if first else acc) + np.outer(a, b)
        if last:
            out.append(acc.copy())
    return np.concatenate(out) if out else np.zeros((0, cols), dtype=np.int64)


def assemble(rows_out: np.ndarray, m: int, n: int, rows: int, cols: int) -> np.ndarray:
    """The M×N result from the emitted rows of a :func:`gemm_steps` stream."""
    tiles_n = -(-n // cols)
    y = np.zeros((-(-m // rows) * rows, tiles_n * cols), dtype=np.int64)
    for t, block in enumerate(rows_out.reshape(-1, rows, cols)):
        i0, j0 = (t // tiles_n) * rows, (t % tiles_n) * cols
        y[i0:i0 + rows, j0:j0 + cols] = block
    return y[:m, :n]


def gemm(buf_a: np.ndarray, buf_b: np.ndarray, m: int, k: int, n: int,
         trans_a: bool, trans_b: bool) -> np.ndarray:
    """The exact product the tiles must add up to, by NumPy's own matrix multiply."""
    a = buf_a[operand(m, k, trans_a)]
    b = buf_b[operand(k, n, trans_b)]
    return a.astype(np.int64) @ b.astype(np.int64)
