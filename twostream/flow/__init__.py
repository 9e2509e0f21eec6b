"""Optical flow estimators behind one interface, and uint8 quantisation of their output.

Contract shared by every estimator returned by :func:`get_estimator`::

    flow = est(prev, nxt)

``prev`` and ``nxt`` are uint8 arrays of shape (B, H, W, 3) (RGB) or (B, H, W) (grey);
``flow`` is float32 (B, 2, H, W): channel 0 is the horizontal (x) displacement, channel 1
the vertical (y) one, in pixels, from ``prev`` to ``nxt`` (``nxt[y + v, x + u] ~ prev[y, x]``).
"""

from collections.abc import Mapping
from typing import Any

from twostream.flow.estimators import ESTIMATORS, SIZES_OWN_BATCHES, FlowEstimator, batch_pairs, get_estimator
from twostream.flow.quantize import dequantize, quantize

__all__ = ["ESTIMATORS", "SIZES_OWN_BATCHES", "FlowEstimator", "batch_pairs", "dequantize", "estimator_kwargs",
           "get_estimator", "quantize"]


def estimator_kwargs(flow_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """All keyword arguments of a ``conf/flow`` estimator: its ``params`` (what flow it computes,
    part of the cache fingerprint) and its optional ``runtime`` (device, compilation: how)."""
    return {**flow_cfg["params"], **(flow_cfg.get("runtime") or {})}
