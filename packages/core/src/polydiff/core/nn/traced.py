"""Inference-time tracing of a small denoising network.

A network of a few small layers called at batch 1 (a control loop sampling one action chunk per step) spends most
of its CPU time in Python's per-module dispatch. :class:`TracedNetwork` records the network once per input shape
with ``torch.jit.trace`` and runs the recorded graph instead; the trace shares the network's parameters, so weight
updates are seen without re-recording.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

__all__ = ["TracedNetwork"]


class TracedNetwork:
    """Callable stand-in for ``network(x, t, cond=cond)`` that runs a per-shape ``torch.jit.trace`` of it.

    The eager network runs instead with gradients enabled, in training mode, without a ``cond`` tensor, or where
    tracing fails. Call :meth:`clear` after changing the network's structure or mode (a mode change re-records).
    """

    def __init__(self, network: nn.Module):
        self.network = network
        self._traces: dict = {}

    def clear(self) -> None:
        self._traces.clear()

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if torch.is_grad_enabled() or self.network.training or cond is None:
            return self.network(x, t, cond=cond)
        key = (tuple(x.shape), tuple(t.shape), x.dtype, t.dtype, tuple(cond.shape), cond.dtype)
        trace = self._traces.get(key)
        if trace is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    trace = torch.jit.trace(self.network, (x.contiguous(), t.contiguous(), cond.contiguous()),
                                            check_trace=False)
            except Exception:  # noqa: BLE001 - any tracing failure falls back to the eager network
                trace = False
            self._traces[key] = trace
        if trace is False:
            return self.network(x, t, cond=cond)
        # dense inputs: a stride-0 (expanded) time would fail the graph executor's stride guards on every call
        return trace(x.contiguous(), t.contiguous(), cond.contiguous())
