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
  vector ``theta``; products are summed over chunks of the data, so memory is one chunk's
  (with one chunk the gradient graph is built once and reused by every product). The
  objective is the mean or the sum of the per-row losses, whether ``loss_fn`` itself sums
  or averages (``nn.CrossEntropyLoss()`` is not divided by ``n`` twice), and evaluating it
  never changes the model: parameters by `torch.func.functional_call`, buffers copied
  (train-mode BatchNorm uses batch statistics, its running statistics stay bit for bit),
  train or eval mode for the call only (`evaluation_mode`).
* `PerSampleHessian`: the per-sample Hessians ``H_i = nabla^2 l_i`` of a `ModelLoss`
  (batch axis: the samples), vectorised over samples by `torch.func.vmap`.
* `FunctionHessian`: the Hessian of a scalar function of one flat vector.
* `GDJacobian` (``I - eta H``), `PreconditionedOperator` (``P^{-1/2} (H + c I) P^{-1/2}``, the
  Hessian an adaptive optimizer sees), `DenseOperator` (a given tensor) and `MatvecOperator`
  (a given ``v -> A v`` callable).

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
from contextlib import contextmanager
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
    "PreconditionedOperator",
    "ParameterFlattener",
    "as_operator",
    "evaluation_mode",
    "resolve_mode",
    "batch_dependent_modules",
    "MODES",
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

    def describe(self) -> dict:
        """What the operator is the Hessian of (a model's objective: reduction, mode, ...); ``{}`` when nothing is known."""
        return {}

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


class PreconditionedOperator(CurvatureOperator):
    r"""``D (A + c I) D`` with ``D = diag(d)``, ``d > 0``: the preconditioned Hessian.

    For ``d = P^{-1/2}`` (``P`` a positive diagonal preconditioner, e.g. Adam's
    ``sqrt(v_hat) + eps``) this is ``P^{-1/2} (H + c I) P^{-1/2}``, symmetric and similar to
    ``P^{-1} (H + c I)``: its eigenvalues are those of the preconditioned update's linearisation
    (central flows; Cohen et al. 2022). ``c`` is an L2 term the optimizer adds to the gradient
    (coupled weight decay). Unbatched ``A`` only.
    """

    def __init__(self, A: CurvatureOperator, d: Tensor, shift: float | Tensor = 0.0):
        if A.batch_shape:
            raise NdgmError(f"a preconditioned operator needs an unbatched operator, got batch shape {A.batch_shape}")
        d = torch.as_tensor(d, dtype=A.dtype).detach().to(device=A.device).reshape(-1)  # a float stays exact
        if d.shape != (A.dim,):
            raise NdgmError(f"d must have shape ({A.dim},), got {tuple(d.shape)}")
        if not bool(torch.isfinite(d).all()) or not bool((d > 0).all()):
            raise NdgmError("d (the diagonal of P^-1/2) must be finite and > 0")
        shift = torch.as_tensor(shift, dtype=A.dtype).detach().to(device=A.device)
        if shift.ndim and shift.shape != (A.dim,):
            raise NdgmError(f"shift must be a scalar or have shape ({A.dim},), got {tuple(shift.shape)}")
        super().__init__(A.dim, (), A.dtype, A.device)
        self.A, self.d = A, d
        self.shift = shift if bool((shift != 0).any()) else None

    def describe(self) -> dict:
        return self.A.describe()

    def _matmat(self, V: Tensor) -> Tensor:
        DV = self.d[:, None] * V
        out = self.A.matmat(DV)
        if self.shift is not None:
            out = out + (self.shift[:, None] if self.shift.ndim else self.shift) * DV
        return self.d[:, None] * out


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

#: Modules evaluated with dropout off whatever the mode: the Hessian of a random loss is not a
#: fixed operator, so Lanczos on it would be meaningless.
DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
MODES = ("auto", "train", "eval")
REDUCTIONS = ("mean", "sum")


def resolve_mode(model: nn.Module, mode: str) -> str:
    """``'train'`` or ``'eval'``: ``mode``, or the model's own flag for ``'auto'``."""
    if mode not in MODES:
        raise NdgmError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        return "train" if model.training else "eval"
    return mode


@contextmanager
def evaluation_mode(model: nn.Module, mode: str):
    """Within the block every submodule is in ``mode`` (``'train'`` or ``'eval'``), dropout off;
    afterwards each submodule has its own ``training`` flag back, exactly as before."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        for m in model.modules():
            m.training = mode == "train" and not isinstance(m, DROPOUT_MODULES)
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def batch_dependent_modules(model: nn.Module, mode: str) -> list[str]:
    """Names of submodules whose output on one row depends on the other rows of the batch in
    ``mode``: BatchNorm layers that normalise with batch statistics (train mode, or no running
    statistics kept)."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return [f"{type(m).__name__} {name!r}" for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and (mode == "train" or not m.track_running_stats)]


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

    def functional_call(self, theta: Tensor, *args, mode: str | None = None, **kwargs):
        """``model(*args, **kwargs)`` with the parameters taken from ``theta``; the module is not written.

        Buffers are frozen: the call gets copies of them, so a BatchNorm in train mode
        normalises with the batch's statistics and updates only the copies (its running
        statistics and ``num_batches_tracked`` stay bit for bit). ``mode`` (``'train'`` or
        ``'eval'``; None: the module's own flags) sets the training flags for the call only,
        dropout off (`evaluation_mode`). Scaled dot-product attention runs on its math
        backend, the one whose backward can itself be differentiated (the fused CPU and GPU
        kernels have no double backward).
        """
        from torch.func import functional_call
        from torch.nn.attention import SDPBackend, sdpa_kernel

        state = {k: b.clone() for k, b in self.model.named_buffers()}
        state.update(self.unflatten(theta))
        with sdpa_kernel(SDPBackend.MATH):
            if mode is None:
                return functional_call(self.model, state, args, kwargs)
            with evaluation_mode(self.model, mode):
                return functional_call(self.model, state, args, kwargs)


def _declared_loss_reduction(loss_fn) -> str | None:
    """``'mean'``/``'sum'`` as a torch loss module declares it (``'batchmean'`` is a row mean),
    None for a plain callable (it is probed)."""
    r = getattr(loss_fn, "reduction", None) if isinstance(loss_fn, nn.Module) else None
    if r is None:
        return None
    if r == "batchmean":
        return "mean"
    if r not in REDUCTIONS:
        raise NdgmError(f"loss_fn has reduction={r!r}: it must reduce to a scalar ('mean' or 'sum')")
    return r


class ModelLoss:
    r"""A model, a loss and a dataset as a function of one flat parameter vector.

    .. math:: L(\theta) = \frac{1}{s} \sum_{i=1}^{n} l_i(\theta), \qquad
              l_i = \mathrm{loss\_fn}(f_\theta(x_i), y_i)

    with ``s = n`` for ``reduction='mean'`` and ``s = 1`` for ``'sum'``; ``reduction=None``
    takes the objective exactly as written, ``loss_fn(f_theta(X), Y)`` on all ``n`` rows
    (its reduction, detected, is the objective's). ``loss_fn`` may itself sum or average
    over the rows it is given (``loss_reduction``): a torch loss module says which
    (``reduction='mean'``, ``'sum'``; ``'batchmean'`` counts as a mean), a plain callable is
    probed once (its value on rows repeated twice is twice its value for a sum, equal for a
    mean). So ``ModelLoss(model, nn.CrossEntropyLoss(), X, y)`` is the mean cross-entropy,
    chunked or not, and never that mean divided by ``n`` again.

    The data are taken in consecutive chunks of at most ``chunk_size`` rows; chunk ``c``
    contributes ``loss_fn(f(X_c), Y_c) * w_c`` with ``w_c = 1/s`` (summing loss) or
    ``n_c / s`` (averaging loss). Chunking is exact for losses that are sums or means of
    per-row terms; it is refused where it is not: BatchNorm normalising with batch
    statistics (the statistics of a chunk are not those of the batch) and weighted or
    ``ignore_index`` means of ``nn.CrossEntropyLoss`` / ``nn.NLLLoss``.

    Evaluation never changes the model: parameters come from ``theta`` by
    `torch.func.functional_call`, buffers are copied for each call (BatchNorm in train mode
    uses batch statistics and updates only the copy), and the training flags are set for the
    call only. ``mode='auto'`` follows ``model.training``; ``'train'`` (batch statistics) or
    ``'eval'`` (running statistics) on request; dropout is always off (`evaluation_mode`).
    Inputs and floating targets are moved to the parameters' device, floating inputs and
    targets cast to their dtype.

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable ``(outputs, targets) -> scalar``
        A sum or a mean over the rows it is given.
    X, Y : Tensor
        Inputs and targets (rows are samples).
    chunk_size : int or None
        Rows per chunk (None: all rows at once).
    reduction : {'mean', 'sum'} or None
        The objective: mean or sum of the per-row losses ``l_i``; None: as ``loss_fn`` reduces.
    loss_reduction : {'auto', 'mean', 'sum'}
        How ``loss_fn`` reduces over its rows; ``'auto'`` reads a torch loss module's
        ``reduction`` or probes a callable.
    mode : {'auto', 'train', 'eval'}

    Attributes
    ----------
    flattener : ParameterFlattener
    dim : int
    dtype, device
        Those of the parameters (of ``X`` when there are none).
    reduction, loss_reduction : str
        Resolved (``loss_reduction`` is ``'unknown'`` only for an objective taken as written on
        one chunk whose reduction the probe could not tell; then ``reduction`` is ``'as written'``).
    mode : str
        ``'train'`` or ``'eval'``, resolved.
    scale : float or None
        ``s``: ``L = sum_i l_i / s`` (None when the reduction is unknown).
    n_hvp : int
        Full-data Hessian-vector products computed on this loss by its operators.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], X: Tensor, Y: Tensor,
                 chunk_size: int | None = 4096, reduction: str | None = "mean", loss_reduction: str = "auto",
                 mode: str = "auto"):
        if reduction is not None and reduction not in REDUCTIONS:
            raise NdgmError(f"reduction must be 'mean', 'sum' or None (as the loss reduces), got {reduction!r}")
        if loss_reduction not in ("auto", *REDUCTIONS):
            raise NdgmError(f"loss_reduction must be 'auto', 'mean' or 'sum', got {loss_reduction!r}")
        if X.shape[0] != Y.shape[0]:
            raise NdgmError(f"X and Y must have the same number of rows, got {X.shape[0]} and {Y.shape[0]}")
        if X.shape[0] == 0:
            raise NdgmError("X must have at least one row")
        self.model = model
        self.loss_fn = loss_fn
        self.flattener = ParameterFlattener(model)
        self.dim = self.flattener.dim
        self.dtype = self.flattener.dtype or X.dtype
        self.device = self.flattener.device or X.device
        self.X = X.to(device=self.device, dtype=self.dtype if X.is_floating_point() else X.dtype)
        self.Y = Y.to(device=self.device, dtype=self.dtype if Y.is_floating_point() else Y.dtype)
        n = self.X.shape[0]
        self.chunk_size = n if chunk_size is None else check_int("chunk_size", chunk_size)
        self.n_chunks = -(-n // self.chunk_size)
        self.mode = resolve_mode(model, mode)
        if self.n_chunks > 1:
            dependent = batch_dependent_modules(model, self.mode)
            if dependent:
                raise NdgmError(
                    f"chunk_size = {self.chunk_size} < n = {n} with {dependent[0]} normalising by batch statistics "
                    f"(mode {self.mode!r}): each chunk would use its own statistics, which is not the objective on "
                    "all rows; use chunk_size=None (all rows) or mode='eval'")
        self.loss_reduction = self._resolve_loss_reduction(loss_reduction, needed=self.n_chunks > 1
                                                           or reduction is not None)
        if reduction is None:
            self.reduction = self.loss_reduction if self.loss_reduction in REDUCTIONS else "as written"
        else:
            self.reduction = reduction
        if self.n_chunks > 1 and self.loss_reduction == "mean":
            self._check_row_mean(loss_fn)
        self.scale = {"mean": float(n), "sum": 1.0}.get(self.reduction)
        self.n_hvp = 0

    # -- the objective's reduction --------------------------------------------------------
    def _resolve_loss_reduction(self, declared: str, needed: bool) -> str:
        if declared in REDUCTIONS:
            return declared
        found = _declared_loss_reduction(self.loss_fn)
        if found is not None:
            return found
        try:
            return self._probe_loss_reduction()
        except NdgmError:
            if needed:
                raise
            return "unknown"

    def _probe_loss_reduction(self) -> str:
        """Sum or mean, from ``loss_fn`` on ``m`` rows and on the same rows twice (ratio 2 or 1).

        The outputs of the first ``m`` rows are perturbed by a seeded random amount first, so
        that a loss that is 0 at the current point (an interpolating minimum) still tells. The
        forward is also run twice on the same rows: a model whose forward is random (dropout
        outside ``nn.Dropout`` modules) is refused here.
        """
        m = min(self.X.shape[0], self.chunk_size, 8)
        Xm, Ym = self.X[:m], self.Y[:m]
        with torch.no_grad():
            if self.dim:
                theta = self.flattener.flatten()
                out, out2 = (self.flattener.functional_call(theta, Xm, mode=self.mode) for _ in range(2))
            else:
                out, out2 = self.model(Xm), self.model(Xm)
            rtol = 1e-6 if self.dtype == torch.float64 else 1e-3  # sum and mean differ by 2x, dropout by O(1)
            if isinstance(out, Tensor) and out.is_floating_point():
                if not torch.allclose(out, out2, rtol=rtol, atol=rtol * float(out.abs().max())):
                    raise NdgmError("the model's forward pass is random (two passes on the same rows differ): "
                                    "curvature needs a fixed loss (dropout outside nn.Dropout modules?)")
                g = torch.Generator().manual_seed(0)
                noise = torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype=out.dtype, device=out.device)
                out = out + noise * max(1.0, float(out.abs().mean()))
                twice = self.loss_fn(torch.cat([out, out]), torch.cat([Ym, Ym]))
            else:
                twice = None
            once = self.loss_fn(out, Ym)
        if once.numel() != 1:
            raise NdgmError(f"loss_fn must return a scalar, got shape {tuple(once.shape)}")
        once = float(once)
        twice = float(twice) if twice is not None else math.nan
        if not (math.isfinite(once) and math.isfinite(twice)) or once == 0:
            raise NdgmError("cannot tell whether loss_fn sums or averages over rows: pass loss_reduction='sum' or "
                            "'mean'")
        ratio = twice / once
        if abs(ratio - 2) <= 2 * rtol:
            return "sum"
        if abs(ratio - 1) <= rtol:
            return "mean"
        raise NdgmError(f"loss_fn is neither a sum nor a mean over rows (the same rows twice give {ratio:.6g} x its "
                        "value): pass loss_reduction='sum' or 'mean', or use chunk_size=None and reduction=None")

    def _check_row_mean(self, loss_fn) -> None:
        """A weighted (or ``ignore_index``) mean of a torch classification loss is not a mean of rows."""
        if not isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)):
            return
        weighted = loss_fn.weight is not None
        ignored = not self.Y.is_floating_point() and bool((self.Y == loss_fn.ignore_index).any())
        if weighted or ignored:
            why = "class weights" if weighted else f"targets equal to ignore_index={loss_fn.ignore_index}"
            raise NdgmError(f"{type(loss_fn).__name__} with {why} averages with per-row weights, so chunks of rows "
                            "do not combine into its mean: use chunk_size=None (all rows)")

    def describe(self) -> dict:
        """The objective in words: reduction, the loss's reduction, mode, rows, chunks, dtype, device."""
        return {"reduction": self.reduction, "loss_reduction": self.loss_reduction, "mode": self.mode,
                "n": int(self.X.shape[0]), "chunks": self.n_chunks, "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.device)}

    # -- evaluation ----------------------------------------------------------------------
    def params_vector(self) -> Tensor:
        """The module's current parameters as one flat (detached) vector."""
        return self.flattener.flatten()

    def chunks(self):
        for start in range(0, self.X.shape[0], self.chunk_size):
            yield self.X[start:start + self.chunk_size], self.Y[start:start + self.chunk_size]

    def chunk_weight(self, rows: int) -> float:
        """``w_c`` of a chunk of ``rows`` rows (1 for an objective taken as written on one chunk)."""
        if self.reduction == "as written":
            return 1.0
        return (1.0 if self.loss_reduction == "sum" else float(rows)) / self.scale

    def chunk_loss(self, theta: Tensor, Xc: Tensor, Yc: Tensor) -> Tensor:
        """One chunk's term ``loss_fn(f_theta(Xc), Yc) * w_c``."""
        out = self.flattener.functional_call(theta, Xc, mode=self.mode)
        loss = self.loss_fn(out, Yc)
        w = self.chunk_weight(Xc.shape[0])
        return loss if w == 1.0 else loss * w

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
        return theta.detach().to(dtype=self.dtype, device=self.device).clone()


class ModelHessian(CurvatureOperator):
    r"""``H(theta)`` of a `ModelLoss`: ``H v = sum_c d/dtheta [grad L_c(theta) . v]`` (reverse over reverse).

    With one chunk the gradient and its graph are built once, at the first product, and kept
    (``cache_graph``, default: when there is one chunk): every later product is one backward
    pass through that graph, as PyHessian does. With several chunks each block of vectors
    costs one forward and backward pass per chunk plus one backward per vector, and memory
    is that of one chunk. ``theta`` is copied when the operator is made.
    """

    def __init__(self, loss: ModelLoss, theta: Tensor | None = None, cache_graph: bool | None = None):
        super().__init__(loss.dim, (), loss.dtype, loss.device)
        self.loss = loss
        self.theta = loss._point(theta)
        self.cache_graph = loss.n_chunks == 1 if cache_graph is None else bool(cache_graph)
        self._graph: tuple[Tensor, Tensor] | None = None

    def describe(self) -> dict:
        return self.loss.describe()

    def clear_cache(self) -> None:
        """Drop the kept gradient graph (it is rebuilt at the next product)."""
        self._graph = None

    def _gradient_graph(self, Xc: Tensor, Yc: Tensor) -> tuple[Tensor, Tensor]:
        t = self.theta.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.loss.chunk_loss(t, Xc, Yc), t, create_graph=True)
        return t, g

    def _matmat(self, V: Tensor) -> Tensor:
        cols = _columns(V)
        if self.cache_graph:
            if self._graph is None:
                self._graph = self._gradient_graph(self.loss.X, self.loss.Y) if self.loss.n_chunks == 1 else None
            if self._graph is not None:
                t, g = self._graph
                if not g.requires_grad:
                    out = torch.zeros_like(V)
                else:
                    out = torch.stack([_zero_if_none(torch.autograd.grad(g, t, grad_outputs=v, retain_graph=True,
                                                                         allow_unused=True)[0], t)
                                       for v in cols], -1).detach()
                self.loss.n_hvp += len(cols)
                return out
        t = self.theta.detach().requires_grad_(True)
        outs = [torch.zeros_like(t) for _ in cols]
        with torch.enable_grad():
            for Xc, Yc in self.loss.chunks():
                for out, hv in zip(outs, _double_backward(self.loss.chunk_loss(t, Xc, Yc), t, cols)):
                    if hv is not None:
                        out += hv
        self.loss.n_hvp += len(cols)
        return torch.stack(outs, -1).detach()


def _zero_if_none(h: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if h is None else h


class PerSampleHessian(CurvatureOperator):
    r"""Per-sample Hessians ``H_i = nabla^2 l_i(theta)``, ``l_i = loss_fn(f_theta(x_i), y_i)``: batch ``(n,)``.

    ``A @ v`` with ``v`` of shape ``(d,)`` gives every ``H_i v`` (``(n, d)``); with ``(n, d)`` it
    gives ``H_i v_i``. The per-sample losses are not divided by ``n``: the `ModelLoss`'s Hessian
    is ``sum_i H_i / s``. Reverse over reverse (`torch.func.grad` of ``<grad l_i, v>``, as
    every operator here; forward-mode AD misses kernels such as Huber's), vectorised over
    samples by `torch.func.vmap`, ``chunk_size`` samples at a time.
    """

    def __init__(self, loss: ModelLoss, theta: Tensor | None = None):
        dependent = batch_dependent_modules(loss.model, loss.mode)
        if dependent:
            raise NdgmError(f"per-sample Hessians need each row on its own, but {dependent[0]} normalises by batch "
                            f"statistics in mode {loss.mode!r}: use mode='eval'")
        super().__init__(loss.dim, (loss.X.shape[0],), loss.dtype, loss.device)
        self.loss = loss
        self.theta = loss._point(theta)

    def describe(self) -> dict:
        return {**self.loss.describe(), "per_sample": True}

    def _matmat(self, V: Tensor) -> Tensor:
        from torch.func import grad, vmap

        flat, loss_fn, theta, mode = self.loss.flattener, self.loss.loss_fn, self.theta, self.loss.mode

        def sample_loss(th, x, y):
            return loss_fn(flat.functional_call(th, x[None], mode=mode), y[None])

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
