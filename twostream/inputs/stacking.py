"""Build the temporal stream's input from a window of flow fields (the paper's section 3.1).

Fields are float32 (T-1, 2, H, W) pixels: ``flow_fwd[k]`` goes from frame k to frame k+1 and
``flow_bwd[k]`` from frame k+1 back to frame k. A stack is (2L, H, W) with channels ordered
(x_1, y_1, x_2, y_2, ..., x_L, y_L).

- ``optical_flow`` stacking samples every field at the same pixel p.
- ``trajectory`` stacking samples each field where the point that started at p has moved to:
  p_1 = p, p_{k+1} = p_k + d_k(p_k), bilinear interpolation, sample positions clamped to the
  image.
- ``bidirectional``: the window of L+1 frames s .. s+L is split at its middle frame
  tau = s + L/2; fields 1..L/2 are the backward fields between frames s and tau
  (``flow_bwd[s .. tau-1]``, in time order), fields L/2+1..L the forward fields between tau
  and s+L (``flow_fwd[tau .. s+L-1]``). Trajectories start at tau and run outwards in both
  directions. L must be even.
- ``mean_subtraction`` removes each displacement field's own mean per channel, a cheap
  compensation of global (camera) motion.
"""

import numpy as np

STACKING_MODES = ("optical_flow", "trajectory")


def bilinear_sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample a (C, H, W) field at float positions (x, y) of shape (H, W), clamped to the image."""
    _, h, w = field.shape
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros_like(x, np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros_like(y, np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    ax, ay = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    top = field[:, y0, x0] * (1 - ax) + field[:, y0, x1] * ax
    bottom = field[:, y1, x0] * (1 - ax) + field[:, y1, x1] * ax
    return (top * (1 - ay) + bottom * ay).astype(np.float32)


def _follow(fields: np.ndarray, mode: str) -> list[np.ndarray]:
    """Sample consecutive fields (K, 2, H, W) at a fixed pixel or along the trajectory from it."""
    if mode == "optical_flow":
        return list(fields)
    _, _, h, w = fields.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    sampled = []
    for field in fields:
        d = bilinear_sample(field, x, y)
        sampled.append(d)
        x, y = x + d[0], y + d[1]
    return sampled


def stack_flow(flow_fwd: np.ndarray, start: int, L: int, mode: str = "optical_flow",
               flow_bwd: np.ndarray | None = None, bidirectional: bool = False,
               mean_subtraction: bool = False) -> np.ndarray:
    """The (2L, H, W) input of the window of frames ``start`` .. ``start + L`` (see the module doc)."""
    if mode not in STACKING_MODES:
        raise ValueError(f"unknown stacking mode {mode!r}; available: {', '.join(STACKING_MODES)}")
    if L < 1 or start < 0 or start + L > flow_fwd.shape[0]:
        raise IndexError(f"a stack of L={L} from field {start} needs fields up to {start + L - 1}, "
                         f"but there are {flow_fwd.shape[0]}")
    if bidirectional:
        if L % 2:
            raise ValueError(f"bi-directional stacking needs an even L, got L={L}")
        if flow_bwd is None:
            raise ValueError("bi-directional stacking needs backward flow (cache.backward=true)")
        tau = start + L // 2
        # Backward fields run from tau towards the past: follow them in that order, then
        # put them back in time order.
        backward = _follow(flow_bwd[start:tau][::-1], mode)[::-1]
        fields = backward + _follow(flow_fwd[tau:start + L], mode)
    else:
        fields = _follow(flow_fwd[start:start + L], mode)
    stack = np.stack(fields).astype(np.float32, copy=False)
    if mean_subtraction:
        stack = stack - stack.mean(axis=(2, 3), keepdims=True)
    return stack.reshape(2 * L, *stack.shape[2:])
