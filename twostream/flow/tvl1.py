"""TV-L1 optical flow in torch, batched over frame pairs, on CUDA or on the CPU.

The model and the solver are those of Zach, Pock & Bischof, "A Duality Based Approach for Realtime
TV-L1 Optical Flow" (DAGM 2007). The flow ``u = (u1, u2)`` minimises

    sum_x |grad u1| + |grad u2| + lambda * |rho(u)|,    rho(u) = I1(x + u) - I0(x),

with ``rho`` linearised around the current estimate ``u0`` (one linearisation per *warp*):
``rho(u) = rho_c + grad I1w . u`` where ``I1w = I1(x + u0)`` and ``rho_c = I1w - grad I1w . u0 - I0``.
Coupling ``u`` to an auxiliary field ``v`` with weight ``1 / (2 theta)`` splits it into two steps
that alternate, for each pixel and each pair of the batch at once:

1. ``v = u + c * grad I1w``, the closed-form minimiser of the data term (thresholding step):
   ``c = lambda theta`` if ``rho(u) < -lambda theta |grad I1w|^2``, ``-lambda theta`` if
   ``rho(u) > lambda theta |grad I1w|^2``, else ``-rho(u) / |grad I1w|^2``;
2. ``u = v + theta div p`` and ``p = (p + tau/theta grad u) / (1 + tau/theta |grad u|)`` for each
   component (Chambolle's projection for the total variation; forward differences for ``grad``,
   backward differences for ``div``).

Large motion is handled coarse to fine: an image pyramid (``scales`` levels, each ``scale_step`` times
the size of the one above), ``warps`` re-linearisations per level, at most ``iterations`` steps per
warp; a pair stops (its state is frozen) once the mean squared change of its ``u`` in one step is
below ``epsilon^2``, so its flow does not depend on the other pairs of the batch. Which pairs are
still moving is kept on the device; the host reads whether any is (to end the warp early) after
every step on the CPU, where that is free, and every ``cuda_check_every`` steps on CUDA, where each
read waits for the GPU to drain its queue. A frozen pair does not change, so how often this is read
changes how many steps run, never the flow. A
``median_filter`` x ``median_filter`` median of ``u`` after each warp removes outliers (Wedel et al.
2009; ``median_filter`` <= 1 turns it off). The warped image and its gradients are read with bicubic
interpolation, the gradients computed with fourth-order central differences.

Speed: the primal-dual step and the warp are compiled with :func:`torch.compile` into fused
kernels (several times faster than eager torch on a CPU); if compilation is unavailable (no C
compiler, an unsupported platform) the same functions run eagerly after one warning. On the CPU a
batch is solved ``cpu_chunk`` pairs at a time so that one step's working set stays in the caches.
The kernels are compiled once for symbolic batch size, height and width (``dynamic_shapes``), so one
compile serves every pyramid level of every frame size: a folder of clips of many aspect ratios
compiles once per process, not once per size and level (experiments/tvl1_sizes measures both ways;
``dynamic_shapes=False`` is the old per-size way). torch also caches compiled kernels on disk
(``TORCHINDUCTOR_CACHE_DIR``), which shortens a later process's compile.
On CUDA the median is compiled too (one kernel instead of hundreds of element-wise steps), and
:meth:`TVL1.auto_batch_size` sizes batches to the free GPU memory (``flow.batch_size: auto``). On
a CPU shared with other busy processes, OpenMP's spin-waiting can make torch many times slower;
importing :mod:`twostream` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the environment has a policy)
to avoid that, which works if it happens before torch is imported.
On the CPU the result is deterministic: the same input gives bit-identical flow.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from twostream.devices import resolve_device
from twostream.flow.frames import to_grey

log = logging.getLogger(__name__)

MIN_LEVEL_SIDE = 16      # the pyramid stops before a level whose shorter side would be smaller
KEYS_A = -0.75           # Keys' cubic convolution parameter (the one OpenCV and torch use for bicubic)
RECOMPILE_LIMIT = 128    # compiled variants per function with dynamic_shapes=False: one per (level, size); 8 x 16
_TINY = 1e-12            # guards the division by |grad I1w|^2 where the image is flat
PROBE_PAIRS = 2          # blank pairs solved to measure one pair's CUDA memory (2: a batch of 1 is solved as 2)


def _maybe_compiled(fn: Callable[..., Any], enabled: bool) -> Callable[..., Any]:
    """``fn`` compiled by torch.compile, falling back to eager ``fn`` (with one warning) if compiling fails."""
    if not enabled:
        return fn
    options: dict[str, Any] = {"dynamic": False}
    if "recompile_limit" in inspect.signature(torch.compile).parameters:
        options["recompile_limit"] = RECOMPILE_LIMIT
    compiled = torch.compile(fn, **options)
    state = {"fn": compiled}

    def call(*args: Any) -> Any:
        try:
            return state["fn"](*args)
        except Exception as error:  # any compiler failure: the eager function computes the same thing
            if state["fn"] is fn:
                raise
            log.warning("tvl1: torch.compile failed (%s: %s); running %s eagerly, which is several times "
                        "slower", type(error).__name__, str(error).splitlines()[0] if str(error) else "",
                        fn.__name__)
            state["fn"] = fn
            return fn(*args)

    return call


def _mark_batch_dynamic(*tensors: torch.Tensor) -> None:
    """Let one compiled kernel serve every batch size (a batch of 1 would still get kernels of its own)."""
    for t in tensors:
        torch._dynamo.mark_dynamic(t, 0)


def _mark_batch_and_size_dynamic(*tensors: torch.Tensor) -> None:
    """Let one compiled kernel serve every batch size and every (H, W): each pyramid level of each frame size.

    Every tensor of 3 or more dimensions handed to the kernels ends in (H, W).
    """
    for t in tensors:
        torch._dynamo.mark_dynamic(t, 0)
        if t.dim() >= 3:
            torch._dynamo.mark_dynamic(t, t.dim() - 2)
            torch._dynamo.mark_dynamic(t, t.dim() - 1)


def _leave_batch_static(*tensors: torch.Tensor) -> None:
    """Eager torch needs no shape hints."""


# ---------------------------------------------------------------- image operators


def image_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y derivatives of (..., H, W) images by fourth-order central differences, borders replicated."""
    p = F.pad(img.unsqueeze(-3), (2, 2, 2, 2), mode="replicate").squeeze(-3)
    h, w = img.shape[-2:]

    def diff(before2: torch.Tensor, before1: torch.Tensor, after1: torch.Tensor, after2: torch.Tensor):
        return (before2 - 8 * before1 + 8 * after1 - after2) / 12

    gx = diff(p[..., 2:2 + h, 0:w], p[..., 2:2 + h, 1:1 + w], p[..., 2:2 + h, 3:3 + w], p[..., 2:2 + h, 4:4 + w])
    gy = diff(p[..., 0:h, 2:2 + w], p[..., 1:1 + h, 2:2 + w], p[..., 3:3 + h, 2:2 + w], p[..., 4:4 + h, 2:2 + w])
    return gx, gy


def _cubic_weights(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Keys' cubic convolution weights of the samples at offsets -1, 0, 1, 2 for fractional position t."""

    def near(d: torch.Tensor) -> torch.Tensor:  # |d| <= 1
        return ((KEYS_A + 2) * d - (KEYS_A + 3)) * d * d + 1

    def far(d: torch.Tensor) -> torch.Tensor:  # 1 < |d| < 2
        return ((KEYS_A * d - 5 * KEYS_A) * d + 8 * KEYS_A) * d - 4 * KEYS_A

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def bicubic_sample(planes: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Sample each (B, H, W) plane at pixel coordinates ``x``, ``y`` (B, H, W); outside reads the border.

    The planes share the positions, so the weights and indices are computed once for all of them.
    """
    b, h, w = planes[0].shape
    x0, y0 = torch.floor(x), torch.floor(y)
    wx, wy = _cubic_weights(x - x0), _cubic_weights(y - y0)
    xi, yi = x0.long().reshape(b, -1), y0.long().reshape(b, -1)
    flat = [plane.reshape(b, h * w) for plane in planes]
    out = [torch.zeros_like(f) for f in flat]
    for j in range(4):
        row_start = (yi + (j - 1)).clamp(0, h - 1) * w
        row = [torch.zeros_like(f) for f in flat]
        for i in range(4):
            index = row_start + (xi + (i - 1)).clamp(0, w - 1)
            weight = wx[i].reshape(b, -1)
            row = [r + weight * torch.gather(f, 1, index) for r, f in zip(row, flat, strict=True)]
        out = [o + wy[j].reshape(b, -1) * r for o, r in zip(out, row, strict=True)]
    return [o.reshape(x.shape) for o in out]


def median_filter(u: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` x ``size`` median of each channel of (B, C, H, W) ``u``, borders replicated.

    On the CPU this is OpenCV's medianBlur (an order of magnitude faster than sorting in torch);
    elsewhere it is :func:`median_filter_torch`. Both give the exact median.
    """
    if u.device.type == "cpu":
        frames = u.contiguous().numpy()
        out = np.empty_like(frames)
        for i in np.ndindex(frames.shape[:2]):
            out[i] = cv2.medianBlur(frames[i], size)
        return torch.from_numpy(out)
    return median_filter_torch(u, size)


def median_filter_torch(u: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`median_filter` in torch alone (the path used on CUDA), by rank selection on shifted views.

    Each of the ``size^2`` shifted views of the padded field is ranked against the others, ties
    broken by the view's index: the ranks are then a permutation of 0 .. size^2 - 1, and the view
    whose rank is the middle one holds the exact median. Unlike the median of unfolded windows
    (``size^2`` copies of the field), this keeps a few fields alive in eager torch, and compiled
    into one kernel it reads each window from the cache.
    """
    h, w = u.shape[-2:]
    r = size // 2
    padded = F.pad(u, (r, r, r, r), mode="replicate")
    views = [padded[..., dy:dy + h, dx:dx + w] for dy in range(size) for dx in range(size)]
    middle = len(views) // 2
    out = torch.zeros_like(u)
    for j, view in enumerate(views):
        rank = torch.zeros(u.shape, dtype=torch.int16, device=u.device)
        for i, other in enumerate(views):
            if i != j:  # (value, index) order: an equal value earlier in the window ranks below
                rank += (other <= view) if i < j else (other < view)
        out = torch.where(rank == middle, view, out)
    return out


# ---------------------------------------------------------------- the solver's two kernels


def linearise(i1: torch.Tensor, i1x: torch.Tensor, i1y: torch.Tensor, i0: torch.Tensor, u: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp I1 and its derivatives by ``u``; return (grad I1w (B, 2, H, W), rho_c (B, H, W)).

    Pixels whose displaced position falls outside the image get no data term (zero gradient and
    ``rho_c``), so only the smoothness term shapes their flow. The pixel grid is made here, from the
    image's size, so that a kernel compiled for symbolic sizes takes no tensor tied to one size.
    """
    h, w = i0.shape[-2:]
    xs = torch.arange(w, dtype=torch.float32, device=i0.device).view(1, 1, w)
    ys = torch.arange(h, dtype=torch.float32, device=i0.device).view(1, h, 1)
    x, y = xs + u[:, 0], ys + u[:, 1]
    i1w, gx, gy = bicubic_sample([i1, i1x, i1y], x, y)
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    gx, gy = torch.where(inside, gx, 0.0), torch.where(inside, gy, 0.0)
    rho_c = torch.where(inside, i1w - gx * u[:, 0] - gy * u[:, 1] - i0, 0.0)
    return torch.stack([gx, gy], 1), rho_c


def _forward_gradient(u: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) -> (B, 2, 2, H, W): forward differences along x and y, zero on the last column/row."""
    gx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1))
    gy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return torch.stack([gx, gy], 2)


def _divergence(p: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2, H, W) -> (B, 2, H, W): backward differences, the negative adjoint of the forward gradient."""
    px, py = p[:, :, 0], p[:, :, 1]
    return px - F.pad(px[..., :, :-1], (1, 0)) + py - F.pad(py[..., :-1, :], (0, 0, 1, 0))


def primal_dual_step(u: torch.Tensor, p: torch.Tensor, grad: torch.Tensor, rho_c: torch.Tensor,
                     active: torch.Tensor, lambda_theta: float, theta: float, tau_theta: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One iteration (thresholding, primal and dual updates) for the ``active`` pairs; others stay as they are.

    Returns the new ``u``, ``p`` and each pair's mean squared change of ``u`` (0 for inactive pairs).
    Freezing converged pairs makes a pair's result independent of the batch it is solved in.
    """
    grad2 = (grad * grad).sum(1)
    rho = rho_c + (grad * u).sum(1)
    bound = lambda_theta * grad2
    c = torch.where(rho < -bound, lambda_theta,
                    torch.where(rho > bound, -lambda_theta, -rho / grad2.clamp(min=_TINY)))
    new_u = u + c.unsqueeze(1) * grad + theta * _divergence(p)
    g = _forward_gradient(new_u)
    new_p = (p + tau_theta * g) / (1 + tau_theta * g.square().sum(2, keepdim=True).sqrt())
    change = torch.where(active, (new_u - u).square().sum(1).mean((-2, -1)), 0.0)
    keep = active.view(-1, 1, 1, 1)
    return torch.where(keep, new_u, u), torch.where(keep.unsqueeze(-1), new_p, p), change


# ---------------------------------------------------------------- the estimator


class TVL1:
    """TV-L1 flow estimator with the :class:`~twostream.flow.FlowEstimator` contract (see module doc)."""

    def __init__(self, *, tau: float, lambda_: float, theta: float, scales: int, scale_step: float, warps: int,
                 iterations: int, epsilon: float, median_filter: int, device: str = "auto",
                 compile: bool = True, dynamic_shapes: bool = True, cpu_chunk: int = 2,
                 cuda_check_every: int = 1, memory_fraction: float = 0.5) -> None:
        checks = {"tau": tau > 0, "lambda_": lambda_ > 0, "theta": theta > 0, "scales": scales >= 1,
                  "scale_step": 0 < scale_step < 1, "warps": warps >= 1, "iterations": iterations >= 1,
                  "epsilon": epsilon >= 0, "median_filter": median_filter <= 1 or median_filter % 2 == 1,
                  "cpu_chunk": cpu_chunk >= 1, "cuda_check_every": cuda_check_every >= 1,
                  "memory_fraction": 0 < memory_fraction <= 1}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"tvl1: invalid parameter(s) {', '.join(bad)}: need tau, lambda_, theta > 0, "
                             "scales, warps, iterations, cpu_chunk, cuda_check_every >= 1, 0 < scale_step < 1, "
                             "epsilon >= 0, median_filter odd or <= 1, 0 < memory_fraction <= 1")
        self.tau, self.lambda_, self.theta = tau, lambda_, theta
        self.scales, self.scale_step, self.warps = scales, scale_step, warps
        self.iterations, self.epsilon, self.median_size = iterations, epsilon, median_filter
        self.cpu_chunk, self.memory_fraction = cpu_chunk, memory_fraction
        self.device = resolve_device(device, key="flow.runtime.device")
        on_cuda = self.device.type == "cuda"
        #: primal-dual steps between host reads of "is any pair still moving" (any value gives the same flow)
        self.check_every = cuda_check_every if on_cuda else 1
        self._linearise = _maybe_compiled(linearise, compile)
        self._step = _maybe_compiled(primal_dual_step, compile)
        self._median_torch = _maybe_compiled(median_filter_torch, compile)
        self._batch_sizes: dict[tuple[int, int], int] = {}
        self._shape_hints = (_leave_batch_static if not compile
                             else _mark_batch_and_size_dynamic if dynamic_shapes else _mark_batch_dynamic)

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if prev.shape != nxt.shape:
            raise ValueError(f"prev and nxt differ in shape: {prev.shape} vs {nxt.shape}")
        i0, i1 = (torch.from_numpy(to_grey(f).astype(np.float32)).to(self.device) for f in (prev, nxt))
        chunk = self.cpu_chunk if self.device.type == "cpu" else len(i0)
        with torch.no_grad():
            flows = [self.solve(i0[k:k + chunk], i1[k:k + chunk]) for k in range(0, len(i0), chunk)]
        return torch.cat(flows).cpu().numpy()

    def auto_batch_size(self, height: int, width: int) -> int:
        """Pairs of ``height`` x ``width`` frames to hand over at once (``flow.batch_size: auto``).

        On the CPU, the ``cpu_chunk`` pairs it solves together anyway. On CUDA, as many as fit in
        ``memory_fraction`` of the GPU memory free now, at the peak memory of one pair measured
        once per frame size on blank pairs (which also compiles that size's kernels).
        """
        if self.device.type != "cuda":
            return self.cpu_chunk
        size = (height, width)
        if size not in self._batch_sizes:
            free, _ = torch.cuda.mem_get_info(self.device)
            self._batch_sizes[size] = pairs_that_fit(free * self.memory_fraction, self._bytes_per_pair(*size))
        return self._batch_sizes[size]

    def _bytes_per_pair(self, height: int, width: int) -> float:
        """Peak CUDA memory of one pair: blank pairs have no gradient, so they converge at the first check."""
        blank = torch.zeros((PROBE_PAIRS, height, width), device=self.device)
        torch.cuda.synchronize(self.device)
        before = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        with torch.no_grad():
            self.solve(blank, blank)
        return (torch.cuda.max_memory_allocated(self.device) - before) / PROBE_PAIRS

    def pyramid_sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        """(height, width) of each pyramid level, finest first."""
        sizes = [(h, w)]
        for level in range(1, self.scales):
            size = (round(h * self.scale_step ** level), round(w * self.scale_step ** level))
            if min(size) < MIN_LEVEL_SIDE:
                break
            sizes.append(size)
        return sizes

    def solve(self, i0: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
        """Flow (B, 2, H, W) from grey float images ``i0`` to ``i1`` (B, H, W), coarse to fine."""
        if len(i0) == 1 and self._shape_hints is not _leave_batch_static:
            # a batch of one would compile kernels of its own: solve it as a pair of twins
            return self.solve(i0.expand(2, -1, -1), i1.expand(2, -1, -1))[:1]
        pair = torch.stack([i0, i1], 1)
        u = None
        for h, w in reversed(self.pyramid_sizes(*i0.shape[-2:])):
            level = pair if (h, w) == tuple(pair.shape[-2:]) else F.interpolate(
                pair, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            if u is None:
                u = torch.zeros((len(pair), 2, h, w), device=pair.device)
            else:  # carry the coarser flow up: resample it and rescale its pixel units
                scale = torch.tensor([w / u.shape[-1], h / u.shape[-2]], device=u.device).view(1, 2, 1, 1)
                u = F.interpolate(u, size=(h, w), mode="bilinear", align_corners=False) * scale
            u = self._solve_level(level[:, 0].contiguous(), level[:, 1].contiguous(), u)
        return u

    def _solve_level(self, i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``warps`` linearisations of the data term, each followed by primal-dual steps until converged."""
        h, w = i0.shape[-2:]
        i1x, i1y = image_gradient(i1)
        p = torch.zeros((len(u), 2, 2, h, w), device=u.device)
        stop = self.epsilon ** 2
        for _ in range(self.warps):
            self._shape_hints(i1, i1x, i1y, i0, u)
            grad, rho_c = self._linearise(i1, i1x, i1y, i0, u)
            active = torch.ones(len(u), dtype=torch.bool, device=u.device)
            for step in range(1, self.iterations + 1):
                self._shape_hints(u, p, grad, rho_c, active)
                u, p, change = self._step(u, p, grad, rho_c, active, self.lambda_ * self.theta, self.theta,
                                          self.tau / self.theta)
                active = change >= stop
                if step % self.check_every == 0 and not bool(active.any()):
                    break
            if self.median_size > 1:
                self._shape_hints(u)
                u = (median_filter(u, self.median_size) if u.device.type == "cpu"
                     else self._median_torch(u, self.median_size))
        return u


def pairs_that_fit(budget_bytes: float, bytes_per_pair: float) -> int:
    """How many pairs of ``bytes_per_pair`` fit in ``budget_bytes`` (at least one: a batch cannot be smaller)."""
    return max(1, int(budget_bytes // max(bytes_per_pair, 1.0)))
