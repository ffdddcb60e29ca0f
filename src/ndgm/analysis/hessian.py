r"""One Hessian operator (the curvlinops pattern): products, dense form, GD-map Jacobian.

Every Hessian in ndgm is a `CurvatureOperator`: a batch of symmetric ``d x d`` matrices
``A_b``, ``shape = (*batch_shape, d, d)`` (no batch axis for one model), known through its
products. A subclass writes one method, ``_matmat(V)``: the product with a block of vectors
``V`` of shape ``(*batch_shape, d, m)``. The base gives the rest:

* ``A @ v`` and ``A @ V`` (`~CurvatureOperator.matvec`, `~CurvatureOperator.matmat`; also
  ``A(v)``, so an operator goes wherever a matvec callable went), with a product counter
  ``n_products``;
* `~CurvatureOperator.dense` for small sizes, `~CurvatureOperator.det` and
  `~CurvatureOperator.log_abs_det` (``log|det|``, per block);
* `~CurvatureOperator.gd_jacobian`: ``I - eta H``, the Jacobian of the GD map
  ``theta -> theta - eta grad L(theta)``, itself an operator (dense form, products, ``det``);
* `~CurvatureOperator.to_scipy`: a `scipy.sparse.linalg.LinearOperator` on the flattened
  ``prod(batch_shape) * d`` space; `~CurvatureOperator.block`: one block of a batch as an
  unbatched operator (for `ndgm.analysis.curvature.lanczos`).

The operators:

* `ProblemHessian`: a batched `ndgm.problems.Problem` at ``W`` of shape ``(K, d)``. Rows are
  independent configurations, so the Hessian of ``sum_k L_k(w_k)`` is block diagonal with one
  ``d x d`` block per configuration (dense form ``(K, d, d)``), and one double backward of that
  sum gives every block's product at once.
* `ModelHessian`: an ``nn.Module``, a loss and a dataset (a `ModelLoss`) at a flat parameter
  vector ``theta``; products are summed over chunks of the data, so memory is one chunk's.
* `PerSampleHessian`: the per-sample Hessians ``H_i = nabla^2 l_i`` of a `ModelLoss`
  (batch axis: the samples), vectorised over samples by `torch.func.vmap`.
* `FunctionHessian`: the Hessian of a scalar function of one flat vector.
* `GDJacobian` (``I - eta H``), `DenseOperator` (a given tensor) and `MatvecOperator` (a
  given ``v -> A v`` callable).

`ParameterFlattener` is the one map between a module's parameters and a flat vector (names,
shapes, flatten / unflatten, `torch.func.functional_call`).

Products are autodiff's double backward, ``v -> d/dx <grad L(x), v>``: a vector-Jacobian
product of the gradient, i.e. ``v^T H``. `~CurvatureOperator.dense` therefore stacks the
products of the unit vectors as rows -- the matrix double backward writes; for a symmetric
Hessian rows and columns agree up to rounding. At a kink the framework's convention applies
(``relu'' = 0``; Huber's second derivative is the indicator ``1{|r| <= delta}``), and a loss
whose gradient does not depend on the parameters (autodiff's ``|w|``) has the Hessian 0.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import NdgmError, check_int

__all__ = [
    "CurvatureOperator",
    "ProblemHessian",
    "ModelLoss",
    "ModelHessian",
    "PerSampleHessian",
    "FunctionHessian",
    "GDJacobian",
    "DenseOperator",
    "MatvecOperator",
    "ParameterFlattener",
    "as_operator",
    "mse_sum",
    "cross_entropy_sum",
]


def mse_sum(outputs: Tensor, targets: Tensor) -> Tensor:
    r"""``sum_i 1/2 ||f(x_i) - y_i||^2`` over the rows of a chunk."""
    return 0.5 * (outputs - targets.reshape(outputs.shape)).pow(2).sum()


def cross_entropy_sum(outputs: Tensor, targets: Tensor) -> Tensor:
    r"""``sum_i -log softmax(f(x_i))_{y_i}`` over the rows of a chunk."""
    return torch.nn.functional.cross_entropy(outputs, targets, reduction="sum")


def _double_backward(loss: Tensor, x: Tensor, vectors: Sequence[Tensor]) -> list[Tensor | None]:
    """``v^T nabla^2 loss(x)`` for each ``v``: one gradient with its graph, then one backward per vector.

    ``None`` where autodiff has no graph for the product (a gradient that does not depend on
    ``x``, or a vector it does not reach): the product is 0 there.
    """
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    if not g.requires_grad:
        return [None] * len(vectors)
    last = len(vectors) - 1
    return [torch.autograd.grad(g, x, grad_outputs=v, retain_graph=i < last, allow_unused=True)[0]
            for i, v in enumerate(vectors)]


def _columns(V: Tensor) -> list[Tensor]:
    """The ``m`` vectors of a block ``(..., d, m)``, each contiguous ``(..., d)``."""
    return [V[..., i].contiguous() for i in range(V.shape[-1])]


# -- the base ------------------------------------------------------------------------------

class CurvatureOperator:
    r"""A batch of symmetric ``d x d`` operators, ``shape = (*batch_shape, d, d)``, known by products.

    Subclasses call ``super().__init__(dim, batch_shape, dtype, device)`` and write
    ``_matmat(V)``: ``V`` of shape ``(*batch_shape, d, m)`` (already in the operator's dtype
    and device) to ``A V`` of the same shape.

    Attributes
    ----------
    dim : int
        ``d``, the size of one block.
    batch_shape : tuple of int
        ``()`` for one operator, ``(K,)`` for a block-diagonal batch.
    dtype, device
        Of the vectors the operator takes and returns (inputs are converted).
    n_products : int
        Products computed so far: one per vector of a block (a product with every block of a
        batch at once counts once), so ``dense()`` costs ``d``.
    """

    def __init__(self, dim: int, batch_shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu"):
        self.dim = int(dim)
        self.batch_shape = tuple(int(b) for b in batch_shape)
        self.dtype = dtype
        self.device = torch.device(device)
        self.n_products = 0

    def _matmat(self, V: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.batch_shape, self.dim, self.dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device})"

    # -- products ------------------------------------------------------------------------
    def matmat(self, V: Tensor) -> Tensor:
        """``A V`` for a block of vectors ``V`` of shape ``(*batch_shape, d, m)``."""
        want = (*self.batch_shape, self.dim)
        if V.ndim != len(want) + 1 or tuple(V.shape[:-1]) != want:
            raise NdgmError(f"V must have shape {want + ('m',)}, got {tuple(V.shape)}")
        V = V.detach().to(dtype=self.dtype, device=self.device)
        out = self._matmat(V)
        self.n_products += V.shape[-1]
        return out

    def matvec(self, v: Tensor) -> Tensor:
        """``A v`` for ``v`` of shape ``(*batch_shape, d)``; a batched operator also takes one
        ``(d,)`` vector, shared by every block (the result is ``(*batch_shape, d)``)."""
        want = (*self.batch_shape, self.dim)
        if self.batch_shape and v.ndim == 1 and v.shape[0] == self.dim:
            v = v.expand(want)
        if tuple(v.shape) != want:
            raise NdgmError(f"v must have shape {want}, got {tuple(v.shape)}")
        return self.matmat(v[..., None])[..., 0]

    def __matmul__(self, X: Tensor) -> Tensor:
        """``A @ v`` (``(*batch_shape, d)``, or ``(d,)`` shared) or ``A @ V`` (``(*batch_shape, d, m)``)."""
        return self.matmat(X) if X.ndim == len(self.batch_shape) + 2 else self.matvec(X)

    def __call__(self, v: Tensor) -> Tensor:
        return self.matvec(v)

    # -- dense forms (small sizes) ---------------------------------------------------------
    def dense(self) -> Tensor:
        """The operator as a tensor of shape ``(*batch_shape, d, d)``, from ``d`` products.

        Row ``j`` is the product with the ``j``-th unit vector (see the module docstring).
        """
        d = self.dim
        eye = torch.eye(d, dtype=self.dtype, device=self.device).expand(*self.batch_shape, d, d)
        return self.matmat(eye).transpose(-1, -2).contiguous()

    def det(self) -> Tensor:
        """``det`` of each block, shape ``batch_shape`` (dense: small sizes)."""
        return torch.linalg.det(self.dense())

    def log_abs_det(self) -> Tensor:
        """``log|det|`` of each block, shape ``batch_shape`` (``-inf`` where singular; dense: small sizes)."""
        return torch.linalg.slogdet(self.dense()).logabsdet

    # -- derived operators -----------------------------------------------------------------
    def gd_jacobian(self, eta: float | Tensor) -> GDJacobian:
        """``I - eta A``: the Jacobian of the GD map when ``A`` is the Hessian; ``eta`` scalar or ``batch_shape``."""
        return GDJacobian(self, eta)

    def block(self, index: int | tuple[int, ...]) -> CurvatureOperator:
        """Block ``index`` of a batched operator as an unbatched ``d x d`` operator.

        Each of its products is one product of the whole batch (the other blocks get zeros).
        """
        return _Block(self, index)

    def to_scipy(self):
        """A `scipy.sparse.linalg.LinearOperator` on the flattened ``prod(batch_shape) * d`` space.

        Flat index ``b * d + i`` is coordinate ``i`` of block ``b`` (row-major); NumPy arrays in,
        NumPy arrays out, in the operator's dtype.
        """
        from scipy.sparse.linalg import LinearOperator

        n = math.prod(self.batch_shape) * self.dim
        vec_shape = (*self.batch_shape, self.dim)
        np_dtype = torch.empty((), dtype=self.dtype).numpy().dtype

        def mv(x):
            v = torch.as_tensor(np.ravel(x), dtype=self.dtype).to(self.device).reshape(vec_shape)
            return self.matvec(v).detach().reshape(-1).cpu().numpy()

        def mm(X):
            X = np.asarray(X)
            V = torch.as_tensor(X, dtype=self.dtype).to(self.device).reshape(*vec_shape, X.shape[1])
            return self.matmat(V).detach().reshape(n, X.shape[1]).cpu().numpy()

        return LinearOperator((n, n), matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np_dtype)


def as_operator(A, dim: int | None = None, dtype: torch.dtype | None = None,
                device: str | torch.device | None = None) -> CurvatureOperator:
    """An unbatched `CurvatureOperator` from an operator or a ``v -> A v`` callable (then ``dim`` is required)."""
    if isinstance(A, CurvatureOperator):
        if A.batch_shape:
            raise NdgmError(f"a batched operator (batch shape {A.batch_shape}) has no single spectrum: "
                            "take one block with .block(index)")
        if dim is not None and int(dim) != A.dim:
            raise NdgmError(f"dim = {dim} does not match the operator's size {A.dim}")
        return A
    if not callable(A):
        raise NdgmError(f"expected a CurvatureOperator or a matvec callable, got {type(A).__name__}")
    if dim is None:
        raise NdgmError("dim is required with a matvec callable")
    return MatvecOperator(A, check_int("dim", dim), dtype or torch.float64, device or "cpu")


# -- generic operators ---------------------------------------------------------------------

class MatvecOperator(CurvatureOperator):
    """A symmetric ``d x d`` operator given by a callable ``v -> A v`` on ``(d,)`` vectors."""

    def __init__(self, matvec: Callable[[Tensor], Tensor], dim: int, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu"):
        super().__init__(dim, (), dtype, device)
        self.fn = matvec

    def _matmat(self, V: Tensor) -> Tensor:
        return torch.stack([self.fn(V[:, i]) for i in range(V.shape[-1])], -1)


class DenseOperator(CurvatureOperator):
    """A given symmetric tensor ``A`` of shape ``(*batch_shape, d, d)`` as an operator."""

    def __init__(self, A: Tensor):
        if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
            raise NdgmError(f"A must have shape (..., d, d), got {tuple(A.shape)}")
        super().__init__(A.shape[-1], tuple(A.shape[:-2]), A.dtype, A.device)
        self.A = A.detach()

    def _matmat(self, V: Tensor) -> Tensor:
        return self.A @ V

    def dense(self) -> Tensor:
        return self.A


class _Block(CurvatureOperator):
    def __init__(self, parent: CurvatureOperator, index):
        index = (index,) if isinstance(index, int) else tuple(index)
        if len(index) != len(parent.batch_shape) or not all(0 <= i < b for i, b in zip(index, parent.batch_shape)):
            raise NdgmError(f"block index must be within the batch shape {parent.batch_shape}, got {index}")
        super().__init__(parent.dim, (), parent.dtype, parent.device)
        self.parent, self.index = parent, index

    def _matmat(self, V: Tensor) -> Tensor:
        full = torch.zeros(*self.parent.batch_shape, *V.shape, dtype=V.dtype, device=V.device)
        full[self.index] = V
        return self.parent.matmat(full)[self.index]


class GDJacobian(CurvatureOperator):
    r"""``I - eta H``: the Jacobian ``D G_eta`` of the GD map ``G_eta(theta) = theta - eta grad L(theta)``.

    ``det(I - eta H) = prod_i (1 - eta lambda_i(H))`` vanishes exactly when ``1/eta`` is an
    eigenvalue of ``H``. ``eta`` is a scalar or has the shape ``batch_shape`` (one step size
    per block); finite and > 0.
    """

    def __init__(self, hessian: CurvatureOperator, eta: float | Tensor):
        super().__init__(hessian.dim, hessian.batch_shape, hessian.dtype, hessian.device)
        eta = torch.as_tensor(eta, dtype=hessian.dtype, device=hessian.device)
        if eta.ndim and tuple(eta.shape) != hessian.batch_shape:
            raise NdgmError(f"eta must be a scalar or have shape {hessian.batch_shape}, got {tuple(eta.shape)}")
        if not bool((eta > 0).all()) or not bool(torch.isfinite(eta).all()):
            raise NdgmError(f"eta must be finite and > 0, got {eta.tolist()}")
        self.hessian, self.eta = hessian, eta

    def _eta(self) -> Tensor:
        return self.eta[..., None, None] if self.eta.ndim else self.eta

    def _matmat(self, V: Tensor) -> Tensor:
        return V - self._eta() * self.hessian.matmat(V)

    def dense(self) -> Tensor:
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return eye - self._eta() * self.hessian.dense()


# -- batched problems ----------------------------------------------------------------------

class ProblemHessian(CurvatureOperator):
    r"""Hessians of a batched `ndgm.problems.Problem` at ``W`` (``(K, d)``): ``K`` blocks ``H_k(w_k)``.

    Vectors have the shape of ``W``; the dense form is ``(K, d, d)``, from ``d`` backward
    passes through ``grad(sum_k L_k)`` -- never the ``(K, d, K, d)`` Hessian of the sum.
    """

    def __init__(self, problem, W: Tensor):
        if W.ndim != 2:
            raise NdgmError(f"W must have shape (K, d), got {tuple(W.shape)}")
        super().__init__(W.shape[1], (W.shape[0],), W.dtype, W.device)
        self.problem = problem
        self.W = W.detach().clone()

    def _matmat(self, V: Tensor) -> Tensor:
        with torch.enable_grad():
            Wg = self.W.detach().requires_grad_(True)
            hv = _double_backward(self.problem.value(Wg).sum(), Wg, _columns(V))
        return torch.stack([torch.zeros_like(self.W) if h is None else h.detach() for h in hv], -1)


# -- modules -------------------------------------------------------------------------------

class ParameterFlattener:
    """A module's trainable parameters (``requires_grad``, in ``named_parameters`` order) as one flat vector.

    Attributes
    ----------
    names, shapes, numels : list
        Per parameter tensor.
    dim : int
        Total number of parameters.
    dtype, device
        Those of the first parameter (None when the module has none).
    """

    def __init__(self, model: nn.Module):
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        self.model = model
        self.names = [k for k, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.dim = sum(self.numels)
        self.dtype = named[0][1].dtype if named else None
        self.device = named[0][1].device if named else None

    def flatten(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        """``params`` (name -> tensor; the module's current parameters when None) as one detached vector."""
        params = dict(self.model.named_parameters()) if params is None else params
        return torch.cat([params[k].detach().reshape(-1) for k in self.names])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Name -> tensor of its shape; views into ``theta``, so gradients flow back to it."""
        if theta.shape != (self.dim,):
            raise NdgmError(f"theta must have shape ({self.dim},), got {tuple(theta.shape)}")
        return {k: t.reshape(s) for k, t, s in zip(self.names, theta.split(self.numels), self.shapes)}

    def write(self, theta: Tensor) -> None:
        """Copy ``theta`` into the module's parameters."""
        with torch.no_grad():
            for k, p in self.unflatten(theta).items():
                self.model.get_parameter(k).copy_(p)

    def functional_call(self, theta: Tensor, *args, **kwargs):
        """``model(*args, **kwargs)`` with the parameters taken from ``theta`` (the module is not written).

        Buffers are the module's own: a BatchNorm in train mode updates its running statistics.
        """
        from torch.func import functional_call

        return functional_call(self.model, self.unflatten(theta), args, kwargs)


class ModelLoss:
    r"""A model, a loss and a dataset as a function of one flat parameter vector.

    .. math:: L(\theta) = \frac{1}{s} \sum_{c} \ell\big(f_\theta(X_c), Y_c\big)

    where ``X_c`` are consecutive chunks of at most ``chunk_size`` rows, ``loss_fn`` returns the
    *sum* of the per-sample losses of the rows it is given, and ``s = n`` for
    ``reduction='mean'`` (``s = 1`` for ``'sum'``). `ModelHessian` differentiates it chunk by
    chunk; `PerSampleHessian` differentiates ``l_i = loss_fn(f(x_i), y_i)`` (a batch of one row).

    Attributes
    ----------
    flattener : ParameterFlattener
    dim : int
    dtype, device
        Those of the parameters (of ``X`` when there are none).
    n_hvp : int
        Full-data Hessian-vector products computed on this loss by its operators.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], X: Tensor, Y: Tensor,
                 chunk_size: int = 4096, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise NdgmError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if X.shape[0] != Y.shape[0]:
            raise NdgmError(f"X and Y must have the same number of rows, got {X.shape[0]} and {Y.shape[0]}")
        self.model = model
        self.loss_fn = loss_fn
        self.X, self.Y = X, Y
        self.chunk_size = check_int("chunk_size", chunk_size)
        self.reduction = reduction
        self.scale = float(X.shape[0]) if reduction == "mean" else 1.0
        self.flattener = ParameterFlattener(model)
        self.dim = self.flattener.dim
        self.dtype = self.flattener.dtype or X.dtype
        self.device = self.flattener.device or X.device
        self.n_hvp = 0

    def params_vector(self) -> Tensor:
        """The module's current parameters as one flat (detached) vector."""
        return self.flattener.flatten()

    def chunks(self):
        for start in range(0, self.X.shape[0], self.chunk_size):
            yield self.X[start:start + self.chunk_size], self.Y[start:start + self.chunk_size]

    def chunk_loss(self, theta: Tensor, Xc: Tensor, Yc: Tensor) -> Tensor:
        """One chunk's term ``loss_fn(f_theta(Xc), Yc) / s``."""
        return self.loss_fn(self.flattener.functional_call(theta, Xc), Yc) / self.scale

    def hessian(self, theta: Tensor | None = None) -> ModelHessian:
        """The Hessian operator at ``theta`` (the module's parameters when None)."""
        return ModelHessian(self, theta)

    def per_sample_hessian(self, theta: Tensor | None = None) -> PerSampleHessian:
        """The per-sample Hessians ``H_i`` at ``theta`` (batch axis: the ``n`` samples)."""
        return PerSampleHessian(self, theta)

    def _point(self, theta: Tensor | None) -> Tensor:
        if theta is None:
            return self.params_vector()
        if theta.shape != (self.dim,):
            raise NdgmError(f"theta must have shape ({self.dim},), got {tuple(theta.shape)}")
        return theta.detach().clone()


class ModelHessian(CurvatureOperator):
    r"""``H(theta)`` of a `ModelLoss`: ``H v = sum_c d/dtheta [grad L_c(theta) . v]`` (reverse over reverse).

    Each block of vectors costs one forward and backward pass per chunk, plus one backward per
    vector; memory is that of one chunk. ``theta`` is copied when the operator is made.
    """

    def __init__(self, loss: ModelLoss, theta: Tensor | None = None):
        super().__init__(loss.dim, (), loss.dtype, loss.device)
        self.loss = loss
        self.theta = loss._point(theta)

    def _matmat(self, V: Tensor) -> Tensor:
        t = self.theta.detach().requires_grad_(True)
        cols = _columns(V)
        outs = [torch.zeros_like(t) for _ in cols]
        with torch.enable_grad():
            for Xc, Yc in self.loss.chunks():
                for out, hv in zip(outs, _double_backward(self.loss.chunk_loss(t, Xc, Yc), t, cols)):
                    if hv is not None:
                        out += hv
        self.loss.n_hvp += len(cols)
        return torch.stack(outs, -1).detach()


class PerSampleHessian(CurvatureOperator):
    r"""Per-sample Hessians ``H_i = nabla^2 l_i(theta)``, ``l_i = loss_fn(f_theta(x_i), y_i)``: batch ``(n,)``.

    ``A @ v`` with ``v`` of shape ``(d,)`` gives every ``H_i v`` (``(n, d)``); with ``(n, d)`` it
    gives ``H_i v_i``. The per-sample losses are not divided by ``n``: the `ModelLoss`'s Hessian
    is ``sum_i H_i / s``. Reverse over reverse (`torch.func.grad` of ``<grad l_i, v>``, as
    every operator here; forward-mode AD misses kernels such as Huber's), vectorised over
    samples by `torch.func.vmap`, ``chunk_size`` samples at a time.
    """

    def __init__(self, loss: ModelLoss, theta: Tensor | None = None):
        super().__init__(loss.dim, (loss.X.shape[0],), loss.dtype, loss.device)
        self.loss = loss
        self.theta = loss._point(theta)

    def _matmat(self, V: Tensor) -> Tensor:
        from torch.func import grad, vmap

        flat, loss_fn, theta = self.loss.flattener, self.loss.loss_fn, self.theta

        def sample_loss(th, x, y):
            return loss_fn(flat.functional_call(th, x[None]), y[None])

        def one(x, y, v):
            return grad(lambda th: torch.dot(grad(sample_loss)(th, x, y), v))(theta)

        # Samples outside, the block's vectors inside: one vectorised call per chunk of samples.
        batched = vmap(vmap(one, in_dims=(None, None, 1), out_dims=1))
        X, Y, c = self.loss.X, self.loss.Y, self.loss.chunk_size
        return torch.cat([batched(X[s:s + c], Y[s:s + c], V[s:s + c]) for s in range(0, X.shape[0], c)])


class FunctionHessian(CurvatureOperator):
    """The Hessian of a scalar function ``f`` of one flat vector at ``x`` (``(d,)``), by double backward."""

    def __init__(self, f: Callable[[Tensor], Tensor], x: Tensor):
        if x.ndim != 1:
            raise NdgmError(f"x must be a flat vector, got shape {tuple(x.shape)}")
        super().__init__(x.shape[0], (), x.dtype, x.device)
        self.f = f
        self.x = x.detach().clone()

    def _matmat(self, V: Tensor) -> Tensor:
        with torch.enable_grad():
            t = self.x.detach().requires_grad_(True)
            hv = _double_backward(self.f(t), t, _columns(V))
        return torch.stack([torch.zeros_like(self.x) if h is None else h.detach() for h in hv], -1)


# -- many parameter points at once -----------------------------------------------------------

class BatchedModelHessian(CurvatureOperator):
    r"""Hessians of one `ModelLoss` at ``K`` parameter points ``thetas`` (``(K, d)``): batch ``(K,)``.

    Block ``k`` is ``H(theta_k) = nabla^2 L(theta_k)``, the `ModelHessian` at ``thetas[k]``;
    ``A @ V`` with ``V`` of shape ``(K, d, m)`` gives every ``H(theta_k) V_k``. Each product is
    reverse over reverse, ``v -> grad_theta <grad L(theta), v>`` (`torch.func.grad`, as every
    operator here), vectorised by `torch.func.vmap` over the points and over the vectors of a
    block, chunk by chunk of the data and at most ``max_vectors`` vectors of a block per
    vectorised call (memory: ``K * max_vectors`` copies of one chunk's activations). So
    `~CurvatureOperator.dense` -- ``K`` Hessians -- is ``ceil(d / max_vectors)`` vectorised
    calls per chunk instead of ``K d`` separate double backwards, and
    ``gd_jacobian(eta)`` with ``eta`` of shape ``(K,)`` gives one GD-map Jacobian per point.

    The model must be vmap-able (no in-place operations, no data-dependent control flow) and
    its buffers are shared by all points (read, not written: use it in eval mode if it has
    running statistics).
    """

    def __init__(self, loss: ModelLoss, thetas: Tensor, max_vectors: int = 64):
        if thetas.ndim != 2 or thetas.shape[1] != loss.dim:
            raise NdgmError(f"thetas must have shape (K, {loss.dim}), got {tuple(thetas.shape)}")
        super().__init__(loss.dim, (thetas.shape[0],), loss.dtype, loss.device)
        self.loss = loss
        self.thetas = thetas.detach().to(dtype=loss.dtype, device=loss.device).clone()
        self.max_vectors = check_int("max_vectors", max_vectors)

    def _matmat(self, V: Tensor) -> Tensor:
        from torch.func import grad, vmap

        loss = self.loss
        out = torch.zeros_like(V)
        for Xc, Yc in loss.chunks():
            def hvp(theta, v, Xc=Xc, Yc=Yc):
                return grad(lambda t: torch.dot(grad(loss.chunk_loss)(t, Xc, Yc), v))(theta)

            batched = vmap(vmap(hvp, in_dims=(None, 1), out_dims=1))
            for s in range(0, V.shape[-1], self.max_vectors):
                out[..., s:s + self.max_vectors] += batched(self.thetas, V[..., s:s + self.max_vectors])
        loss.n_hvp += V.shape[0] * V.shape[-1]
        return out.detach()


def model_gradients(loss: ModelLoss, thetas: Tensor) -> Tensor:
    r"""``grad L(theta_k)`` for every row of ``thetas`` (``(K, d)``), vectorised over the points.

    ``L`` as in `ModelLoss` (summed over its chunks). Used for GD maps of many points at once:
    ``G_eta(theta_k) = theta_k - eta_k grad L(theta_k)``.
    """
    from torch.func import grad, vmap

    if thetas.ndim != 2 or thetas.shape[1] != loss.dim:
        raise NdgmError(f"thetas must have shape (K, {loss.dim}), got {tuple(thetas.shape)}")
    out = torch.zeros_like(thetas)
    for Xc, Yc in loss.chunks():
        out += vmap(grad(loss.chunk_loss), in_dims=(0, None, None))(thetas, Xc, Yc)
    return out.detach()


__all__ += ["BatchedModelHessian", "model_gradients"]
