"""Discrete-state diffusion: D3PM (Austin et al., 2021), masked diffusion MDLM (Sahoo et al., 2024) and
DDPD planned denoising (Liu et al., 2024). Tokens are long tensors (batch, ...) in [0, K); logits (batch, ..., K)."""

from .d3pm import D3PM
from .ddpd import ddpd_corrupt, ddpd_denoiser_loss, ddpd_planner_loss, ddpd_sample
from .mdlm import MaskingSchedule, mdlm_nelbo, mdlm_sample, mdlm_sample_first_hitting, subs_log_probs
from .transitions import d3pm_betas, transition_matrices
