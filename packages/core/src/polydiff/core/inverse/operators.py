"""Linear measurement operators y = A x + n for diffusion inverse-problem solvers.

Every operator acts per sample on x: (batch, *shape) and exposes
    ``forward(x)`` (A), ``adjoint(y)`` (A^T: <A x, y> = <x, A^T y> in the real inner product, Re for complex y),
    ``pinv(y)`` (the Moore-Penrose pseudo-inverse A^+, so A A^+ A = A and A^+ A A^+ = A^+),
    ``measure(x, generator)`` (A x + sigma_y n, the noise n kept to the range of A),
    ``sigma_y`` (the measurement noise level the noise-aware methods assume).
``A^+ A`` is the orthogonal projection onto the row space; DDNM's null-space decomposition x = A^+ A x + (I - A^+ A) x
(Wang et al., 2023, eq. 4) and ILVR's low-pass filter phi_N = A^+ A are built from these.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LinearOperator", "Mask", "Downsample", "SubsampledFourier", "Matrix", "fourier_line_mask"]


def _shape(shape, name: str = "shape") -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"{name}: expected a tuple of positive integers, got {shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"{name}: expected a non-empty tuple of positive integers, got {shape!r}")
    return shape


class LinearOperator:
    """Base class: subclasses set ``input_shape``, ``output_shape``, ``output_complex`` and implement
    ``_forward``, ``_adjoint`` and ``_pinv`` on tensors of shape (batch, *input_shape) / (batch, *output_shape)."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    output_complex: bool = False

    def __init__(self, sigma_y: float = 0.0):
        sigma_y = float(sigma_y)
        if not math.isfinite(sigma_y) or sigma_y < 0:
            raise ValueError(f"sigma_y: expected a finite value >= 0, got {sigma_y}")
        self.sigma_y = sigma_y

    # --- validation
    def check_x(self, x: Tensor, name: str = "x") -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point() or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{name}: expected a real tensor of shape (batch, {', '.join(map(str, self.input_shape))})"
                             f" for {type(self).__name__}, got {tuple(getattr(x, 'shape', ()))}")
        return x

    def check_y(self, y: Tensor, batch: int | None = None, name: str = "y") -> Tensor:
        """Validate a measurement: (batch, *output_shape) (or (1, ...) to share one y over the batch), finite."""
        if not isinstance(y, Tensor) or tuple(y.shape[1:]) != self.output_shape or y.ndim < 1:
            raise ValueError(f"{name}: expected shape (batch, {', '.join(map(str, self.output_shape))}) "
                             f"for {type(self).__name__}, got {tuple(getattr(y, 'shape', ()))}")
        if y.is_complex() != self.output_complex:
            raise ValueError(f"{name}: expected a {'complex' if self.output_complex else 'real'} tensor, "
                             f"got {y.dtype}")
        if batch is not None and y.shape[0] not in (1, batch):
            raise ValueError(f"{name}: batch {y.shape[0]} does not match x's batch {batch}")
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"{name}: contains NaN or inf")
        return y

    # --- the four maps
    def forward(self, x: Tensor) -> Tensor:
        """A x: (batch, *input_shape) -> (batch, *output_shape)."""
        return self._forward(self.check_x(x))

    __call__ = forward

    def adjoint(self, y: Tensor) -> Tensor:
        """A^T y: (batch, *output_shape) -> (batch, *input_shape), real."""
        return self._adjoint(self.check_y(y))

    def pinv(self, y: Tensor) -> Tensor:
        """A^+ y: (batch, *output_shape) -> (batch, *input_shape), real."""
        return self._pinv(self.check_y(y))

    def project_row_space(self, x: Tensor) -> Tensor:
        """A^+ A x, the component of x the measurement sees."""
        return self._pinv(self._forward(self.check_x(x)))

    def measure(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y = A x + sigma_y n, with n white standard-normal noise in the output coordinates kept to the range of A
        (n <- A A^+ n: zero on unobserved mask entries). :class:`SubsampledFourier` overrides the noise."""
        y = self.forward(x)
        if self.sigma_y == 0:
            return y
        return y + self.sigma_y * self._range_noise(x, y, generator)

    def _range_noise(self, x: Tensor, y: Tensor, generator) -> Tensor:
        noise = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        return self._forward(self._pinv(noise))

    def _forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _pinv(self, y: Tensor) -> Tensor:
        raise NotImplementedError


class Mask(LinearOperator):
    """Inpainting: A = diag(m) with m: (*shape) boolean (observed = True) or float weights; y = m * x keeps x's
    shape, zeros where unobserved. A^T = A; A^+ y = y / m where m != 0, else 0."""

    def __init__(self, mask: Tensor, sigma_y: float = 0.0):
        super().__init__(sigma_y)
        mask = torch.as_tensor(mask)
        if mask.ndim < 1:
            raise ValueError("mask: expected a tensor of the per-sample shape, e.g. (channels, height, width)")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise ValueError(f"mask: expected a boolean or floating-point tensor, got {mask.dtype}")
        if mask.is_floating_point() and not bool(torch.isfinite(mask).all()):
            raise ValueError("mask: contains NaN or inf")
        self.mask = mask.double() if mask.dtype == torch.bool else mask.to(torch.float64)
        self.input_shape = self.output_shape = tuple(mask.shape)

    def _m(self, like: Tensor) -> Tensor:
        return self.mask.to(device=like.device, dtype=like.dtype)

    def _forward(self, x):
        return self._m(x) * x

    def _adjoint(self, y):
        return self._m(y) * y

    def _pinv(self, y):
        m = self._m(y)
        return torch.where(m != 0, y / torch.where(m != 0, m, torch.ones_like(m)), torch.zeros_like(y))


class Downsample(LinearOperator):
    """Average pooling by ``factor`` over the last ``dims`` axes of x: (batch, *shape) (default: every axis but the
    first when len(shape) > 1, else the one axis). A^T y spreads y / factor^dims over each block; since
    A A^T = I / factor^dims the pseudo-inverse is A^+ y = nearest-neighbour upsampling and A A^+ = I."""

    def __init__(self, factor: int, shape, dims: int | None = None, sigma_y: float = 0.0):
        super().__init__(sigma_y)
        shape = _shape(shape)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor: expected a positive integer, got {factor!r}")
        dims = (len(shape) - 1 if len(shape) > 1 else 1) if dims is None else dims
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= len(shape):
            raise ValueError(f"dims: expected an integer in [1, {len(shape)}], got {dims!r}")
        pooled = shape[len(shape) - dims:]
        if any(s % factor for s in pooled):
            raise ValueError(f"shape: the pooled axes {pooled} must be multiples of factor={factor}")
        self.factor, self.dims = factor, dims
        self.input_shape = shape
        self.output_shape = shape[:len(shape) - dims] + tuple(s // factor for s in pooled)

    def _blocks(self, x: Tensor) -> tuple[Tensor, list[int]]:
        """View x as (..., n_1, f, n_2, f, ...) and return it with the block axes' positions."""
        lead = x.ndim - self.dims
        view, block_axes = list(x.shape[:lead]), []
        for s in x.shape[lead:]:
            view += [s // self.factor, self.factor]
            block_axes.append(len(view) - 1)
        return x.reshape(view), block_axes

    def _forward(self, x):
        blocks, axes = self._blocks(x)
        return blocks.mean(dim=axes)

    def _upsample(self, y: Tensor) -> Tensor:
        lead = y.ndim - self.dims
        for axis in range(lead, y.ndim):
            y = y.repeat_interleave(self.factor, dim=axis)
        return y

    def _adjoint(self, y):
        return self._upsample(y) / self.factor**self.dims

    def _pinv(self, y):
        return self._upsample(y)


def fourier_line_mask(height: int, acceleration: float, center_fraction: float = 0.08, kind: str = "random",
                      seed: int = 0) -> Tensor:
    """A boolean (height,) mask of sampled phase-encode lines at acceleration R (about height / R lines), with the
    ``center_fraction`` lowest frequencies always sampled (fastMRI's ``RandomMaskFunc`` / ``EquispacedMaskFunc``
    convention, Zbontar et al., 2018). Index 0 is the zero frequency (unshifted FFT order). The mask is made
    conjugate-symmetric (line k sampled iff line -k is), which loses nothing for a real image.

    kind: "random" (lines drawn uniformly without replacement from ``seed``) or "equispaced".
    """
    if isinstance(height, bool) or not isinstance(height, int) or height < 2:
        raise ValueError(f"height: expected an integer >= 2, got {height!r}")
    if not acceleration >= 1:
        raise ValueError(f"acceleration: expected R >= 1, got {acceleration}")
    if not 0 <= center_fraction <= 1:
        raise ValueError(f"center_fraction: expected a value in [0, 1], got {center_fraction}")
    frequencies = torch.fft.fftfreq(height, d=1.0 / height).round().long()  # signed integer frequency per index
    num_center = max(1, round(height * center_fraction))
    mask = frequencies.abs() <= num_center // 2
    target = max(int(round(height / acceleration)), int(mask.sum()))
    # sample symmetric pairs of positive frequencies; each pair adds two lines (one at the Nyquist line)
    positive = [k for k in range(1, height // 2 + 1) if not bool(mask[k])]
    needed = max(0, (target - int(mask.sum()) + 1) // 2)
    if kind == "random":
        order = torch.randperm(len(positive), generator=torch.Generator().manual_seed(seed)).tolist()
        chosen = [positive[i] for i in order[:needed]]
    elif kind == "equispaced":
        step = max(1, len(positive) // max(needed, 1))
        chosen = positive[::step][:needed]
    else:
        raise ValueError(f"kind: expected 'random' or 'equispaced', got {kind!r}")
    for k in chosen:
        mask[k] = mask[-k] = True
    return mask


class SubsampledFourier(LinearOperator):
    """Single-coil MRI: y = M F x with F the orthonormal 2-D FFT over the last two axes of a real image
    x: (batch, *shape), shape = (..., height, width), and M keeping the phase-encode lines (rows, axis -2) where
    ``line_mask``: (height,) is True. y is complex, (batch, *shape), zero on unsampled lines.

    For real x and a conjugate-symmetric mask A is a partial isometry of the real space: A^T y = Re(F^H M y),
    A^T A = A^+ A is an orthogonal projection and A^+ = A^T. ``symmetrize=True`` adds line -k for each sampled
    line k (no information is lost: a real image's k-space satisfies X[-k] = conj(X[k])); with False an
    asymmetric mask raises ValueError. Use :func:`fourier_line_mask` or :meth:`from_acceleration` for masks.
    """

    output_complex = True

    def __init__(self, line_mask: Tensor, shape, sigma_y: float = 0.0, symmetrize: bool = True):
        super().__init__(sigma_y)
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError(f"shape: expected (..., height, width), got {shape}")
        line_mask = torch.as_tensor(line_mask)
        if line_mask.dtype != torch.bool or line_mask.shape != (shape[-2],):
            raise ValueError(f"line_mask: expected a boolean tensor of shape ({shape[-2]},), "
                             f"got {line_mask.dtype} {tuple(line_mask.shape)}")
        mirrored = line_mask[(-torch.arange(shape[-2])) % shape[-2]]
        if not bool((mirrored == line_mask).all()):
            if not symmetrize:
                raise ValueError("line_mask: must be conjugate-symmetric (line k sampled iff line -k) for a real "
                                 "image; pass symmetrize=True")
            line_mask = line_mask | mirrored
        self.line_mask = line_mask
        self.input_shape = self.output_shape = shape

    @classmethod
    def from_acceleration(cls, shape, acceleration: float, center_fraction: float = 0.08, kind: str = "random",
                          seed: int = 0, sigma_y: float = 0.0) -> SubsampledFourier:
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError(f"shape: expected (..., height, width), got {shape}")
        return cls(fourier_line_mask(shape[-2], acceleration, center_fraction, kind, seed), shape, sigma_y)

    @property
    def acceleration(self) -> float:
        return self.line_mask.numel() / int(self.line_mask.sum())

    def _m(self, like: Tensor) -> Tensor:
        return self.line_mask.to(like.device)[:, None]

    def _range_noise(self, x, y, generator):
        # real white image noise seen through A: conjugate-symmetric k-space noise with E|n|^2 = 1 per sampled
        # entry, and A^+ n is that white noise projected on the row space (what DDNM+ assumes)
        return self._forward(torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device))

    def _forward(self, x):
        k_space = torch.fft.fft2(x, norm="ortho")
        return torch.where(self._m(x), k_space, torch.zeros_like(k_space))

    def _adjoint(self, y):
        y = torch.where(self._m(y), y, torch.zeros_like(y))
        return torch.fft.ifft2(y, norm="ortho").real

    _pinv = _adjoint


class Matrix(LinearOperator):
    """A dense matrix acting on the flattened sample: x: (batch, *shape), A: (m, prod(shape)), y: (batch, m).
    The pseudo-inverse is computed once by SVD (``rcond`` relative cutoff). ``random_projection`` builds one with
    orthonormal rows (A A^T = I, so A^+ = A^T and A^+ n has the covariance of n in the row space)."""

    def __init__(self, matrix: Tensor, shape=None, sigma_y: float = 0.0, rcond: float = 1e-10):
        super().__init__(sigma_y)
        matrix = torch.as_tensor(matrix)
        if matrix.ndim != 2 or not matrix.is_floating_point() or not bool(torch.isfinite(matrix).all()):
            raise ValueError("matrix: expected a finite real 2-D tensor (m, n)")
        shape = (matrix.shape[1],) if shape is None else _shape(shape)
        if math.prod(shape) != matrix.shape[1]:
            raise ValueError(f"shape: {shape} has {math.prod(shape)} entries but matrix has {matrix.shape[1]} columns")
        self.matrix = matrix.to(torch.float64)
        self.matrix_pinv = torch.linalg.pinv(self.matrix, rtol=rcond)
        self.input_shape, self.output_shape = shape, (matrix.shape[0],)

    @classmethod
    def random_projection(cls, m: int, shape, seed: int = 0, sigma_y: float = 0.0) -> Matrix:
        shape = _shape(shape)
        n = math.prod(shape)
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= n:
            raise ValueError(f"m: expected an integer in [1, {n}], got {m!r}")
        gaussian = torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        q, _ = torch.linalg.qr(gaussian)
        return cls(q.T.contiguous(), shape, sigma_y)

    def _forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.matrix.to(x).T

    def _adjoint(self, y):
        return (y @ self.matrix.to(y)).reshape((y.shape[0],) + self.input_shape)

    def _pinv(self, y):
        return (y @ self.matrix_pinv.to(y).T).reshape((y.shape[0],) + self.input_shape)
