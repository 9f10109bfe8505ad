"""Bridges and flow matching: flow matching / stochastic interpolants with independent or minibatch-OT couplings,
rectified flow with reflow, Denoising Diffusion Bridge Models and Diffusion Bridge Implicit Models.

Everything here reuses the core schedules, Denoiser and solvers: a flow-matching model is a Denoiser with
``prediction="flow"`` on a ``FlowSchedule`` (or a cosine VP path), and a diffusion bridge conditioned on its
end point y is an ordinary Gaussian diffusion in the shifted state x_t - a_t y (see :mod:`.ddbm`).
"""

from .couplings import independent_coupling, ot_coupling
from .ddbm import BridgeDenoiser, BridgeLoss, BridgeSchedule, sample_dbim, sample_ddbm_heun
from .flow_matching import FlowMatching, reflow_pairs

__all__ = [
    "independent_coupling", "ot_coupling", "FlowMatching", "reflow_pairs", "BridgeSchedule", "BridgeDenoiser",
    "BridgeLoss", "sample_dbim", "sample_ddbm_heun",
]
