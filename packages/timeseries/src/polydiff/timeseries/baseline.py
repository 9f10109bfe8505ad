"""Double seasonal exponential smoothing (Taylor, 2003, "Short-term electricity demand forecasting using double
seasonal exponential smoothing", J. Oper. Res. Soc. 54, eqs. 4-7, without the trend term), in numpy.

The additive model keeps a level l, a profile d of the short season (the day) and a profile w of the long one
(the week):

    l_t = alpha (y_t - d_{t-short} - w_{t-long}) + (1 - alpha) l_{t-1}
    d_t = delta (y_t - l_t - w_{t-long}) + (1 - delta) d_{t-short}
    w_t = omega (y_t - l_t - d_{t-short}) + (1 - omega) w_{t-long}

:func:`seasonal_reference` returns the seasonal part of the one-step forecast, s_t = d_{t-short} + w_{t-long}.
For t up to ``short`` steps past an origin it uses only values before the origin, so it is also the seasonal part
of every forecast of up to ``short`` steps: the forecaster models y_t - s_t (a level plus noise) and adds s_t back
to its sample paths (``transform="double_seasonal"``).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["seasonal_reference", "fit_smoothing", "recent_level", "SMOOTHING_GRID", "holt_winters_reference",
           "fit_holt_winters", "HOLT_WINTERS_GRID", "centred_mean", "decompose", "decomposition_reference"]

#: (alpha, delta, omega) tried by :func:`fit_smoothing`
SMOOTHING_GRID = tuple(itertools.product((0.005, 0.01, 0.02, 0.05, 0.1), (0.1, 0.2, 0.4, 0.6, 0.8),
                                         (0.1, 0.2, 0.4, 0.6, 0.8)))


def seasonal_reference(y: np.ndarray, short: int, long: int, alpha, delta, omega, horizon: int = 0) -> np.ndarray:
    """s_t = d_{t-short} + w_{t-long} for t = 0 .. len(y) + horizon - 1, the states started from y's first long
    season (level: its mean; day profile: its mean per phase of ``short``; week profile: the rest).

    y: (n,) with n >= long and long a multiple of short; alpha, delta, omega: numbers or arrays of one shape
    (params,), for many settings at once. horizon <= short. Returns (n + horizon,) or (params, n + horizon)."""
    y = np.asarray(y, np.float64)
    n = len(y)
    if long % short or n < long:
        raise ValueError(f"y: needs at least one long season ({long} steps, a multiple of short={short}), got {n}")
    if not 0 <= horizon <= short:
        raise ValueError(f"horizon: expected 0 .. short = {short}, got {horizon}")
    scalar = np.ndim(alpha) == 0 and np.ndim(delta) == 0 and np.ndim(omega) == 0
    alpha, delta, omega = (np.atleast_1d(np.asarray(v, np.float64)) for v in np.broadcast_arrays(alpha, delta, omega))
    level = np.full(alpha.shape, y[:long].mean())
    day = np.zeros((len(alpha), n + horizon + short))  # day[:, t + short] holds d_t
    week = np.zeros((len(alpha), n + horizon + long))  # week[:, t + long] holds w_t
    profile = y[:long].reshape(-1, short).mean(0) - level[0]
    day[:, :short] = profile
    week[:, :long] = y[:long] - level[0] - np.tile(profile, long // short)
    reference = np.empty((len(alpha), n + horizon))
    for t in range(n):
        d_back, w_back = day[:, t], week[:, t]
        reference[:, t] = d_back + w_back
        new_level = alpha * (y[t] - d_back - w_back) + (1 - alpha) * level
        day[:, t + short] = delta * (y[t] - new_level - w_back) + (1 - delta) * d_back
        week[:, t + long] = omega * (y[t] - new_level - d_back) + (1 - omega) * w_back
        level = new_level
    for t in range(n, n + horizon):  # states of times before n only (t - short < n)
        reference[:, t] = day[:, t] + week[:, t]
    return reference[0] if scalar else reference


def recent_level(residual: np.ndarray, tau: float) -> np.ndarray:
    """Exponentially weighted mean of the last values of ``residual`` (..., time), weight exp(-age / tau)."""
    age = np.arange(residual.shape[-1])[::-1]
    weight = np.exp(-age / tau)
    return (residual * weight).sum(-1) / weight.sum()


def fit_smoothing(y: np.ndarray, short: int, long: int, h: int, context: int, tau: float,
                  origins: int = 20) -> tuple[float, float, float]:
    """(alpha, delta, omega) of :data:`SMOOTHING_GRID` with the lowest absolute error of the ``h``-step forecasts
    s + recent level (:func:`recent_level` of the last ``context`` residuals y - s) from the last ``origins``
    origins of ``y``, ``h`` apart — the forecast the diffusion model refines, scored on the training data."""
    y = np.asarray(y, np.float64)
    origins = min(origins, (len(y) - long - context) // h)
    if origins < 1:
        raise ValueError(f"y: {len(y)} points leave no origin after a long season ({long}) and a context ({context})")
    grid = np.asarray(SMOOTHING_GRID).T
    reference = seasonal_reference(y, short, long, *grid)
    error = np.zeros(grid.shape[1])
    for origin in range(len(y) - h * origins, len(y) - h + 1, h):
        level = recent_level(y[origin - context:origin] - reference[:, origin - context:origin], tau)
        error += np.abs(y[origin:origin + h] - reference[:, origin:origin + h] - level[:, None]).sum(1)
    return tuple(float(v) for v in grid[:, int(np.argmin(error))])


#: (alpha, beta, gamma) tried by :func:`fit_holt_winters`
HOLT_WINTERS_GRID = tuple(itertools.product((0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9), (0.0, 0.01, 0.05, 0.1, 0.2),
                                            (0.01, 0.05, 0.1, 0.2, 0.4, 0.6)))


def _holt_winters(y: np.ndarray, season: int, alpha, beta, gamma, horizon: int = 0):
    """Additive Holt-Winters (level l, trend b, seasonal profile s of period ``season``) run over ``y``:

        l_t = alpha (y_t - s_{t-season}) + (1 - alpha)(l_{t-1} + b_{t-1})
        b_t = beta (l_t - l_{t-1}) + (1 - beta) b_{t-1}
        s_t = gamma (y_t - l_t) + (1 - gamma) s_{t-season}

    started from the least-squares line through the first min(3, n // season) seasons (level and trend) and the
    mean detrended value per phase (the profile, centred). Returns (seasonal, level, trend): seasonal
    (params, n + horizon) holds s_{t-season}, the seasonal part of the one-step forecast of y_t (for t >= n only
    states before n enter, the last season's profile repeated), level and trend (params, n + 1) the states before each step and after the last."""
    y = np.asarray(y, np.float64)
    n = len(y)
    alpha, beta, gamma = (np.atleast_1d(np.asarray(v, np.float64)) for v in np.broadcast_arrays(alpha, beta, gamma))
    first = min(3, n // season) * season
    t = np.arange(first, dtype=np.float64)
    slope, intercept = np.polyfit(t, y[:first], 1)
    profile = (y[:first] - (intercept + slope * t)).reshape(-1, season).mean(0)
    profile -= profile.mean()
    seasonal = np.zeros((len(alpha), n + horizon + season))  # seasonal[:, t + season] holds s_t
    seasonal[:, :season] = profile
    level = np.empty((len(alpha), n + 1))
    trend = np.empty((len(alpha), n + 1))
    level[:, 0], trend[:, 0] = intercept - slope, slope
    for i in range(n):
        back = seasonal[:, i]
        new_level = alpha * (y[i] - back) + (1 - alpha) * (level[:, i] + trend[:, i])
        trend[:, i + 1] = beta * (new_level - level[:, i]) + (1 - beta) * trend[:, i]
        seasonal[:, i + season] = gamma * (y[i] - new_level) + (1 - gamma) * back
        level[:, i + 1] = new_level
    for i in range(n, n + horizon):  # past the data the profile repeats: s_t = s_{t-season}
        seasonal[:, i + season] = seasonal[:, i]
    return seasonal[:, :n + horizon], level, trend


def holt_winters_reference(y: np.ndarray, season: int, alpha, beta, gamma, horizon: int = 0) -> np.ndarray:
    """s_{t-season} of additive Holt-Winters (see :func:`_holt_winters`) for t = 0 .. len(y) + horizon - 1: the
    seasonal part of the one-step forecast; past the end of ``y`` (``horizon`` steps) the last profile repeats,
    so it uses only values of ``y``. y: (n,) with n >= 2 seasons; alpha, beta, gamma: numbers (returns
    (n + horizon,)) or arrays of one shape (params,) (returns (params, n + horizon))."""
    y = np.asarray(y, np.float64)
    season = int(season)
    if season < 2 or len(y) < 2 * season:
        raise ValueError(f"y: needs at least two seasons of {season} steps (season >= 2), got {len(y)} points")
    if horizon < 0:
        raise ValueError(f"horizon: expected an integer >= 0, got {horizon}")
    scalar = np.ndim(alpha) == 0 and np.ndim(beta) == 0 and np.ndim(gamma) == 0
    reference = _holt_winters(y, season, alpha, beta, gamma, horizon)[0]
    return reference[0] if scalar else reference


def fit_holt_winters(y: np.ndarray, season: int, h: int) -> tuple[float, float, float]:
    """(alpha, beta, gamma) of :data:`HOLT_WINTERS_GRID` with the lowest absolute error of the Holt-Winters
    forecasts l_T + k b_T + s_{T+k-season} (the last profile repeated beyond a season), k = 1 .. ``h``, from
    every origin T after the first two seasons —
    chosen on the training data only."""
    y = np.asarray(y, np.float64)
    season = int(season)
    if h < 1:
        raise ValueError(f"h: expected an integer >= 1, got {h}")
    if season < 2:
        raise ValueError(f"season: expected an integer >= 2, got {season}")
    if len(y) < 2 * season + h:
        raise ValueError(f"y: {len(y)} points leave no origin after two seasons ({2 * season}) and h = {h}")
    grid = np.asarray(HOLT_WINTERS_GRID).T
    seasonal, level, trend = _holt_winters(y, season, *grid)
    steps = np.arange(1, h + 1)
    error = np.zeros(grid.shape[1])
    phase = (steps - 1) % season  # the seasonal index of step k from an origin: the last state of its phase
    for origin in range(2 * season, len(y) - h + 1):
        forecast = level[:, origin, None] + steps * trend[:, origin, None] + seasonal[:, origin + phase]
        error += np.abs(y[origin:origin + h] - forecast).sum(1)
    return tuple(float(v) for v in grid[:, int(np.argmin(error))])



def centred_mean(x: np.ndarray, period: int) -> np.ndarray:
    """Centred moving average of ``x`` (n,) over ``period`` steps (2 x period for an even period, the end points
    weighted by half, as the classical decomposition's trend); near the ends the window is cut to the values there
    are and the mean taken over them."""
    x = np.asarray(x, np.float64)
    n, half = len(x), period // 2
    total = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(n)
    lo, hi = np.clip(i - half, 0, n), np.clip(i + half + 1, 0, n)
    sums, counts = total[hi] - total[lo], (hi - lo).astype(np.float64)
    if period % 2 == 0:  # the 2 x period average: half weight on the two end points where they exist
        left, right = i - half >= 0, i + half < n
        sums = sums - 0.5 * (left * x[np.clip(i - half, 0, n - 1)] + right * x[np.clip(i + half, 0, n - 1)])
        counts = counts - 0.5 * left - 0.5 * right
    return sums / counts


def _cycle_profile(d: np.ndarray, period: int, tau: float) -> np.ndarray:
    """Per phase of ``period`` the weighted mean of the cycle-subseries of ``d`` (the last cycle aligned with the
    end of ``d``; weights exp(-age in cycles / tau)), centred to mean zero; entry k is the phase of d[-period + k]."""
    cycles = d[len(d) - len(d) // period * period:].reshape(-1, period)
    weight = np.exp(-np.arange(len(cycles))[::-1] / tau)
    profile = (cycles * weight[:, None]).sum(0) / weight.sum()
    return profile - profile.mean()


def decompose(x: np.ndarray, periods: tuple[int, ...], taus: tuple[float, ...], iterations: int = 3) -> list:
    """MSTL-style decomposition x = trend + sum of seasonal profiles + remainder, in numpy. ``periods`` ascending,
    each a multiple of the one before; x needs at least two cycles of the longest. The trend is the centred moving
    average over the longest period of x without its seasonal parts; each period's profile is the per-phase mean
    of its cycle-subseries of x without the trend and the other profiles, exponentially weighted by age in cycles
    (``taus``, one per period: a short memory for the day, a long one for the week), less its own mean and, for a
    longer period, the part a shorter period repeats (so that the week holds no daily profile); the loop runs
    ``iterations`` times (STL's inner loop). Returns one profile per period, entry k the phase of x[-period + k]:
    profile[k % period] continues it k steps past the end."""
    x = np.asarray(x, np.float64)
    n, longest = len(x), max(periods)
    if n < 2 * longest:
        raise ValueError(f"x: needs at least two cycles of the longest period ({2 * longest} steps), got {n}")
    profiles = [np.zeros(p) for p in periods]
    phases = [(np.arange(n) - n) % p for p in periods]
    trend = centred_mean(x, longest)
    for _ in range(iterations):
        for i, (period, tau) in enumerate(zip(periods, taus, strict=True)):
            others = sum((profiles[j][phases[j]] for j in range(len(periods)) if j != i), np.zeros(n))
            profile = _cycle_profile(x - trend - others, period, tau)
            for shorter in periods[:i]:
                profile = profile - np.tile(profile.reshape(-1, shorter).mean(0), period // shorter)
            profiles[i] = profile
        trend = centred_mean(x - sum(profiles[j][phases[j]] for j in range(len(periods))), longest)
    return profiles


#: cycles of memory of :func:`decomposition_reference`'s profiles: the short season's and the long season's
DECOMPOSITION_TAUS = (5.0, 8.0)
#: longest seasons of history each decomposition of :func:`decomposition_reference` looks at
DECOMPOSITION_WINDOW = 20


def decomposition_reference(y: np.ndarray, short: int, long: int, horizon: int = 0,
                            taus: tuple[float, float] = DECOMPOSITION_TAUS,
                            window: int = DECOMPOSITION_WINDOW) -> np.ndarray:
    """The seasonal part of the forecasts of an MSTL-style decomposition (:func:`decompose` at ``short`` and
    ``long``) for t = 0 .. len(y) + horizon - 1. The series is decomposed at the origins n, n - short, n - 2 short,
    ... (n = len(y)), each time on the last ``window`` long seasons before the origin only, and the value at t is
    the sum of the profiles of the latest origin r <= t continued t - r steps: over the last ``short`` steps and
    the ``horizon`` steps past the data (horizon <= short) it is the forecast made at n. NaN where the origin holds
    fewer than two long seasons. y: (n,) with long a multiple of short. Returns (n + horizon,)."""
    y = np.asarray(y, np.float64)
    n = len(y)
    if short < 1 or long % short:
        raise ValueError(f"long: expected a multiple of short={short}, got {long}")
    if not 0 <= horizon <= short:
        raise ValueError(f"horizon: expected 0 .. short = {short}, got {horizon}")
    reference = np.full(n + horizon, np.nan)
    for origin in range(n, 2 * long - 1, -short):
        profiles = decompose(y[max(0, origin - window * long):origin], (short, long), taus)
        stop = n + horizon if origin == n else min(origin + short, n)
        ahead = np.arange(stop - origin)
        reference[origin:stop] = profiles[0][ahead % short] + profiles[1][ahead % long]
    return reference
