r"""A design matrix as a linear operator: dense, or sparse without ever densifying it.

`Design` holds ``X`` (n, d) as a dense torch tensor in the layout it was given (row- or column-major:
no copy) or as torch sparse CSR (``X`` and ``X^T`` both kept in CSR, so that both products run
row-major), optionally centred by a rank-one term:

.. math:: \tilde X = X - u v^\top,

with ``v`` (d,) the column offsets (the means an intercept removes) and ``u`` (n,) the row weights
(ones, or ``sqrt(sample_weight)`` when the rows were scaled by it). Centring a sparse matrix would
fill it in; the rank-one form keeps every product at ``O(nnz + n + d)``:
:math:`\tilde X w = Xw - u (v\cdot w)` and :math:`\tilde X^\top r = X^\top r - v (u\cdot r)`.

It quacks like a tensor where `ndgm.problems.LeastSquares` needs one (``ndim``, ``shape``, ``dtype``,
``W @ X.T``, ``R @ X``, ``X @ w``), so the datafit, NDGM on it (`ndgm.dynamics.run_trajectory`) and
the solvers all work on sparse data unchanged. The solvers also use the block products a working set
needs: `columns_t` (chosen columns as contiguous rows), `gram` (``X_A^T X_B``), `column_norms2` and
`spectral_norm2` (``lambda_max(X^T X)`` by Lanczos: a few dozen products, never an eigendecomposition).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..errors import NdgmError

__all__ = ["Design", "as_design"]


def _sparse_layouts() -> tuple:
    return (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)


def is_sparse_tensor(X) -> bool:
    return isinstance(X, Tensor) and X.layout in _sparse_layouts()


def _csr_tensor(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape, dtype: torch.dtype, device) -> Tensor:
    """A torch CSR tensor on the given buffers (shared when dtypes and device allow)."""
    index_dtype = np.int64 if max(indptr.dtype.itemsize, indices.dtype.itemsize) > 4 else np.int32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(torch.from_numpy(np.asarray(indptr, dtype=index_dtype)),
                                       torch.from_numpy(np.asarray(indices, dtype=index_dtype)),
                                       torch.from_numpy(np.asarray(data)).to(dtype),
                                       size=shape).to(device)


def _csr_pair_from_scipy(X, dtype: torch.dtype, device) -> tuple[Tensor, Tensor]:
    """CSR tensors of ``X`` and of ``X^T`` with one format conversion: a CSC matrix's buffers are already
    the CSR buffers of its transpose."""
    fmt = X.format if X.format in ("csr", "csc") else "csr"
    A = sp.csr_array(X) if fmt == "csr" else sp.csc_array(X)
    if not A.has_canonical_format:
        A = A.copy()
        A.sum_duplicates()  # also sorts the indices
    B = A.tocsc() if fmt == "csr" else A.tocsr()
    csr, csc = (A, B) if fmt == "csr" else (B, A)
    n, d = X.shape
    return (_csr_tensor(csr.indptr, csr.indices, csr.data, (n, d), dtype, device),
            _csr_tensor(csc.indptr, csc.indices, csc.data, (d, n), dtype, device))


def _csr_rows(A: Tensor, rows: Tensor) -> Tensor:
    """Rows ``rows`` of the CSR tensor ``A`` as a new CSR tensor (torch has no index_select for CSR)."""
    crow, col, val = A.crow_indices(), A.col_indices(), A.values()
    start = crow[rows]
    lengths = crow[rows + 1] - start
    new_crow = torch.zeros(rows.shape[0] + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    total = int(new_crow[-1])
    pos = torch.repeat_interleave(start - new_crow[:-1], lengths, output_size=total)
    pos += torch.arange(total, dtype=crow.dtype, device=crow.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(new_crow, col[pos], val[pos], size=(rows.shape[0], A.shape[1]))


class _Transposed:
    """``X.T`` of a `Design`, for ``W @ X.T`` (K, d) -> (K, n)."""

    __array_ufunc__ = None  # numpy defers to __rmatmul__

    def __init__(self, design: "Design"):
        self.design = design
        self.shape = (design.shape[1], design.shape[0])
        self.ndim = 2

    def __rmatmul__(self, W):
        return self.design.matvec(W)

    @property
    def T(self) -> "Design":
        return self.design


class Design:
    r"""``X`` (n, d), dense or sparse, optionally centred: :math:`\tilde X = X - u v^\top`.

    Parameters
    ----------
    X : Tensor (dense or any torch sparse layout), ndarray or scipy.sparse matrix
        Dense: stored as given (a row- or column-major tensor: no copy; other strides are made
        contiguous); sparse: torch CSR of ``X`` and of ``X^T``.
    offset : array (d,), optional
        Column offsets ``v`` (an intercept's column means).
    row_weights : array (n,), optional
        ``u``; ones by default. Used only with ``offset``.
    dtype, device : optional
        Default: ``X``'s dtype (float64 for non-float input) and device (CPU for numpy/scipy).
    """

    __array_ufunc__ = None

    def __init__(self, X, offset=None, row_weights=None, dtype: torch.dtype | None = None, device=None):
        if isinstance(X, Design):
            raise NdgmError("X is already a Design")
        if sp.issparse(X):
            dtype = dtype or (torch.float32 if X.dtype == np.float32 else torch.float64)
            device = torch.device(device or "cpu")
            self._csr, self._csr_t = _csr_pair_from_scipy(X, dtype, device)
            self._x = None  # dense storage
        elif is_sparse_tensor(X):
            dtype = dtype or (X.dtype if X.dtype.is_floating_point else torch.float64)
            device = torch.device(device or X.device)
            if X.layout in (torch.sparse_bsr, torch.sparse_bsc, torch.sparse_csc):
                X = X.to_sparse_coo()
            if X.layout == torch.sparse_coo:
                X = X.coalesce()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self._csr = X.to(device=device, dtype=dtype).to_sparse_csr()
                self._csr_t = X.t().to_sparse_coo().coalesce().to(device=device, dtype=dtype).to_sparse_csr()
            self._x = None
        else:
            X = torch.as_tensor(X)
            if X.ndim != 2:
                raise NdgmError(f"X must be a 2-D array, got shape {tuple(X.shape)}")
            dtype = dtype or (X.dtype if X.dtype.is_floating_point else torch.float64)
            X = X.to(dtype=dtype, device=device or X.device)
            if not (X.is_contiguous() or X.T.is_contiguous()):
                X = X.contiguous()
            self._x = X
            self._csr = self._csr_t = None
        self.dtype = dtype
        self.device = self._x.device if self._x is not None else self._csr.device
        self.shape = tuple(self._x.shape if self._x is not None else self._csr.shape)
        self.ndim = 2
        n, d = self.shape
        # On the CPU the small block products of a working set (chosen columns, their Gram) run in scipy on
        # views of the same CSR buffers: torch has no column selection for CSR, and scipy's is compiled.
        self._host_csc = None
        if self._x is None and self.device.type == "cpu":
            t = self._csr_t
            self._host_csc = sp.csc_array((t.values().numpy(), t.col_indices().numpy(), t.crow_indices().numpy()),
                                          shape=(n, d))
        if offset is None:
            self.offset = self.row_weights = None
        else:
            self.offset = torch.as_tensor(offset, dtype=dtype, device=self.device).reshape(-1)
            if self.offset.shape[0] != d:
                raise NdgmError(f"offset must have {d} entries (one per column), got {self.offset.shape[0]}")
            u = torch.ones(n, dtype=dtype, device=self.device) if row_weights is None else \
                torch.as_tensor(row_weights, dtype=dtype, device=self.device).reshape(-1)
            if u.shape[0] != n:
                raise NdgmError(f"row_weights must have {n} entries (one per row), got {u.shape[0]}")
            self.row_weights = u
        self._norms2: Tensor | None = None

    # -- what LeastSquares needs -------------------------------------------------------------------
    @property
    def is_sparse(self) -> bool:
        return self._x is None

    @property
    def T(self) -> _Transposed:
        return _Transposed(self)

    def __matmul__(self, W):
        """``X @ w`` (w (d,)) -> (n,); ``X @ M`` (M (d, k)) -> (n, k)."""
        W = torch.as_tensor(W)
        if W.ndim == 1:
            return self.matvec(W)
        return self.matvec(W.T).T

    def __rmatmul__(self, R):
        """``r @ X`` (r (n,) or (K, n)) -> ``X^T r``."""
        return self.rmatvec(torch.as_tensor(R))

    def matvec(self, W: Tensor) -> Tensor:
        r""":math:`\tilde X w` for ``W (d,)`` -> (n,), or row-wise for ``W (K, d)`` -> (K, n)."""
        if self._x is not None:
            out = W @ self._x.T
        elif W.ndim == 1:
            out = self._csr @ W
        else:
            out = (self._csr @ W.T.contiguous()).T
        if self.offset is not None:
            out = out - (W @ self.offset).unsqueeze(-1) * self.row_weights
        return out

    def rmatvec(self, R: Tensor) -> Tensor:
        r""":math:`\tilde X^\top r` for ``R (n,)`` -> (d,), or row-wise for ``R (K, n)`` -> (K, d)."""
        if self._x is not None:
            out = R @ self._x
        elif R.ndim == 1:
            out = self._csr_t @ R
        else:
            out = (self._csr_t @ R.T.contiguous()).T
        if self.offset is not None:
            out = out - (R @ self.row_weights).unsqueeze(-1) * self.offset
        return out

    # -- block products for working sets --------------------------------------------------------------
    def _index(self, idx) -> Tensor:
        return torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    def columns_t(self, idx) -> Tensor:
        r"""The columns ``idx`` of :math:`\tilde X` as the rows of a dense, contiguous (k, n) tensor."""
        idx = self._index(idx)
        if self._x is not None:
            rows = self._x.T[idx]  # a contiguous gather when X is column-major, a strided one otherwise
        elif self._host_csc is not None:
            rows = torch.from_numpy(self._host_csc[:, idx.numpy()].T.toarray())
        else:
            rows = _csr_rows(self._csr_t, idx).to_dense()
        if self.offset is not None:
            rows = rows - self.offset[idx][:, None] * self.row_weights
        return rows

    @property
    def has_host_columns(self) -> bool:
        """Whether `host_columns` is available (sparse ``X`` on the CPU)."""
        return self._host_csc is not None

    def host_columns(self, idx) -> sp.csc_array:
        r"""The columns ``idx`` of the raw ``X`` (without the centring term ``u v^T``) as a scipy CSC array
        (n, k) sharing nothing with ``X``; only for sparse ``X`` on the CPU (`has_host_columns`)."""
        if self._host_csc is None:
            raise NdgmError("host_columns needs a sparse design on the CPU")
        return self._host_csc[:, np.asarray(idx, dtype=np.int64)]

    def columns(self, idx) -> Tensor:
        r"""The columns ``idx`` of :math:`\tilde X`, dense, shape (n, k)."""
        return self.columns_t(idx).T

    def gram(self, a, b=None) -> Tensor:
        r""":math:`\tilde X_a^\top \tilde X_b`, dense (len(a), len(b)); ``b`` defaults to ``a``."""
        ia = self._index(a)
        ib = ia if b is None else self._index(b)
        if self._x is not None:
            Xa_t = self._x.T[ia]
            G = Xa_t @ (Xa_t if b is None else self._x.T[ib]).T
        elif self._host_csc is not None:
            Sa = self._host_csc[:, ia.numpy()]
            Sb = Sa if b is None else self._host_csc[:, ib.numpy()]
            G = torch.from_numpy((Sa.T @ Sb).toarray())
        else:
            Sa = _csr_rows(self._csr_t, ia)
            Sb = Sa if b is None else _csr_rows(self._csr_t, ib)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                G = (Sa @ Sb.t()).to_dense() if ia.numel() and ib.numel() else \
                    torch.zeros(ia.numel(), ib.numel(), dtype=self.dtype, device=self.device)
        if self.offset is not None:
            # (X_a - u v_a^T)^T (X_b - u v_b^T) = X_a^T X_b - v_a (X_b^T u)^T - (X_a^T u) v_b^T + (u.u) v_a v_b^T
            u, v = self.row_weights, self.offset
            Xtu = self._raw_rmatvec(u)
            va, vb = v[ia], v[ib]
            G = G - va[:, None] * Xtu[ib][None, :] - Xtu[ia][:, None] * vb[None, :] + (u @ u) * va[:, None] * vb[None, :]
        return G

    def all_finite(self) -> bool:
        """No NaN or inf among the stored values (and offsets)."""
        vals = self._x if self._x is not None else self._csr.values()
        ok = bool(torch.isfinite(vals).all())
        return ok and (self.offset is None or bool(torch.isfinite(self.offset).all() and torch.isfinite(self.row_weights).all()))

    def _raw_rmatvec(self, r: Tensor) -> Tensor:
        return r @ self._x if self._x is not None else self._csr_t @ r

    def column_norms2(self) -> Tensor:
        r""":math:`\|\tilde x_j\|^2` for every column (computed once)."""
        if self._norms2 is None:
            if self._x is not None and self._x.T.is_contiguous():
                nrm = torch.linalg.vector_norm(self._x.T, dim=1) ** 2
            elif self._x is not None:  # row-major: sum over blocks of rows (a column-wise norm would stride)
                nrm = torch.zeros(self.shape[1], dtype=self.dtype, device=self.device)
                for i in range(0, self.shape[0], 64):
                    block = self._x[i:i + 64]
                    nrm += (block * block).sum(0)
            else:
                crow, val = self._csr_t.crow_indices(), self._csr_t.values()
                rows = torch.repeat_interleave(torch.arange(self.shape[1], device=self.device), crow[1:] - crow[:-1])
                nrm = torch.zeros(self.shape[1], dtype=self.dtype, device=self.device).index_add_(0, rows, val * val)
            if self.offset is not None:
                u, v = self.row_weights, self.offset
                nrm = (nrm - 2 * v * self._raw_rmatvec(u) + v * v * (u @ u)).clamp_min(0)
            self._norms2 = nrm
        return self._norms2

    def spectral_norm2(self, tol: float = 1e-12) -> float:
        r""":math:`\lambda_{\max}(\tilde X^\top \tilde X)` by Lanczos (scipy's ``eigsh``) on the smaller Gram
        operator, ``X^T X`` or ``X X^T``, from a fixed start vector: a few dozen products, deterministic."""
        from scipy.sparse.linalg import LinearOperator, eigsh

        n, d = self.shape
        if n == 0 or d == 0:
            return 0.0
        if min(n, d) <= 2:  # ARPACK needs k < dim; a 2x2 (or 1x1) Gram is cheap to form
            G = self.gram(np.arange(d)) if d <= n else self._outer_gram()
            return float(np.linalg.eigvalsh(G.double().cpu().numpy())[-1])
        dim = min(n, d)

        def to_t(v):
            return torch.as_tensor(np.ascontiguousarray(v).reshape(-1), dtype=self.dtype, device=self.device)

        if d <= n:
            mv = lambda v: self.rmatvec(self.matvec(to_t(v))).double().cpu().numpy()  # noqa: E731
        else:
            mv = lambda v: self.matvec(self.rmatvec(to_t(v))).double().cpu().numpy()  # noqa: E731
        op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
        vals = eigsh(op, k=1, which="LA", v0=np.ones(dim), tol=tol, return_eigenvectors=False)
        return max(float(vals[0]), 0.0)

    def _outer_gram(self) -> Tensor:
        n = self.shape[0]
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        M = self.rmatvec(eye)  # (n, d): row i is X^T e_i
        return M @ M.T

    def to_dense(self) -> Tensor:
        r""":math:`\tilde X` as a dense tensor (for tests and small problems only)."""
        return self.columns(np.arange(self.shape[1]))

    def __repr__(self) -> str:
        kind = "sparse CSR" if self.is_sparse else "dense"
        centred = ", centred" if self.offset is not None else ""
        return f"Design({self.shape[0]}x{self.shape[1]}, {kind}{centred}, {self.dtype})"


def as_design(X, dtype: torch.dtype | None = None, device=None) -> Design | Tensor:
    """``X`` for a solver: a dense tensor stays a tensor (the solvers' fast path), a `Design` stays
    itself, anything sparse (scipy or torch) becomes a `Design`."""
    if isinstance(X, Design):
        return X
    if sp.issparse(X) or is_sparse_tensor(X):
        return Design(X, dtype=dtype, device=device)
    X = torch.as_tensor(X)
    return X.to(dtype=dtype or (X.dtype if X.dtype.is_floating_point else torch.float64), device=device or X.device)

