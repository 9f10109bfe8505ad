"""Discrete-state diffusion: D3PM (Austin et al., 2021), masked diffusion MDLM (Sahoo et al., 2024) and
DDPD planned denoising (Liu et al., 2024). Tokens are long tensors (batch, ...) in [0, K); logits (batch, ..., K).

Names are re-exported with ``as`` (no __all__), so a module added by another owner needs only its own import line.
"""

from .d3pm import D3PM as D3PM
from .ddpd import ddpd_corrupt as ddpd_corrupt
from .ddpd import ddpd_denoiser_loss as ddpd_denoiser_loss
from .ddpd import ddpd_planner_loss as ddpd_planner_loss
from .ddpd import ddpd_sample as ddpd_sample
from .mdlm import MaskingSchedule as MaskingSchedule
from .mdlm import mdlm_nelbo as mdlm_nelbo
from .mdlm import mdlm_sample as mdlm_sample
from .mdlm import mdlm_sample_first_hitting as mdlm_sample_first_hitting
from .mdlm import subs_log_probs as subs_log_probs
from .multinomial import MultinomialDiffusion as MultinomialDiffusion
from .transitions import d3pm_betas as d3pm_betas
from .transitions import transition_matrices as transition_matrices
