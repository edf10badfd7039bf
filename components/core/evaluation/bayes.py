"""A Bayesian reading of the gate's accuracy counts, beside the p-value.

The four agreement cells (both right, only the challenger right, only the champion right,
both wrong) are multinomial; with Jeffreys' prior, Dirichlet(1/2, 1/2, 1/2, 1/2), their
posterior is Dirichlet(counts + 1/2). The accuracy gain is ``p_c - p_b`` (only-challenger minus
only-champion). Writing the discordance ``s = p_b + p_c`` and the challenger's share of it
``pi = p_c / s``, the posterior makes ``s ~ Beta(b + c + 1, rest + 1)`` and
``pi ~ Beta(c + 1/2, b + 1/2)`` independent, and ``gain = s (2 pi - 1)``. So, exactly up to
a quadrature over ``s``:

- ``P(gain > margin | data)``: the posterior probability that the challenger is better by
  more than the margin (what people often read into 1 - p; it is not that).
- The expected loss, in accuracy, of each action: deploying loses ``(margin - gain)`` when
  the gain falls short of the margin, keeping the champion forgoes ``(gain - margin)`` when
  it does not. Equal costs per point either way (stated in the decision); the action with
  the smaller expected loss is the Bayes choice.

It explains; it never decides (the gate's error guarantee is the frequentist one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

PRIOR = "Jeffreys: Dirichlet(1/2, 1/2, 1/2, 1/2) on the four agreement cells"
COSTS = (
    "each point of accuracy lost by deploying a challenger below the margin costs the same "
    "as each point forgone by keeping a champion the challenger beats by more than the margin"
)
_NODES = 512  # quantile nodes of the discordance's posterior


def _below(a: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """E[(a - pi)^+] for pi ~ Beta(alpha, beta), elementwise in a."""
    a = np.clip(a, 0.0, None)
    inside = np.minimum(a, 1.0)
    mean = alpha / (alpha + beta)
    part = inside * sps.beta.cdf(inside, alpha, beta) - mean * sps.beta.cdf(inside, alpha + 1, beta)
    return np.asarray(part + np.maximum(a - 1.0, 0.0), dtype=np.float64)


def posterior(b: int, c: int, n: int, margin: float) -> dict[str, Any]:
    """The posterior reading of ``b`` champion-only and ``c`` challenger-only rows of ``n``."""
    rest = n - b - c
    alpha, beta = c + 0.5, b + 0.5
    u = (np.arange(_NODES) + 0.5) / _NODES
    s = np.asarray(sps.beta.ppf(u, b + c + 1.0, rest + 1.0), dtype=np.float64)
    s = np.maximum(s, 1e-300)
    mean_pi = alpha / (alpha + beta)

    def p_above(m: float) -> float:
        a = (1.0 + m / s) / 2.0
        return float(np.mean(sps.beta.sf(np.clip(a, 0.0, 1.0), alpha, beta)))

    a = (1.0 + margin / s) / 2.0
    below = _below(a, alpha, beta)
    loss_deploy = float(np.mean(2.0 * s * below))  # E[(margin - gain)^+]
    loss_keep = float(np.mean(2.0 * s * (mean_pi - a + below)))  # E[(gain - margin)^+]
    mean_gain = float(np.mean(s) * (2.0 * mean_pi - 1.0))
    return {
        "prior": PRIOR,
        "margin": margin,
        "posterior_mean_gain": mean_gain,
        "p_better": p_above(0.0),
        "p_gain_above_margin": p_above(margin),
        "expected_loss_deploy": loss_deploy,
        "expected_loss_keep": max(loss_keep, 0.0),
        "costs": COSTS,
        "bayes_choice": "deploy" if loss_deploy < loss_keep else "keep",
    }


def in_words(reading: dict[str, Any]) -> str:
    """The reading for people, one paragraph."""
    m = reading["margin"]
    than = "better than the champion" if m == 0 else f"more than {m * 100:+.1f} points better"
    return (
        f"Given these counts and a neutral prior, the probability that the challenger is "
        f"{than} is {_prob(reading['p_gain_above_margin'])} (posterior mean gain "
        f"{reading['posterior_mean_gain'] * 100:+.2f} points). Expected accuracy given up: "
        f"{reading['expected_loss_deploy'] * 100:.3f} points by deploying, "
        f"{reading['expected_loss_keep'] * 100:.3f} points by keeping the champion; at equal "
        f"costs per point, {reading['bayes_choice']} loses less. This is a reading of the "
        "data, not the rule: the gate deploys on the test's p-value, whose guarantee does not "
        "depend on a prior."
    )


def _prob(p: float) -> str:
    if p > 0.9999:
        return "above 0.9999"
    if p < 1e-4:
        return "below 0.0001"
    return f"{p:.4f}" if p > 0.999 or p < 0.001 else f"{p:.3f}"


__all__ = ["COSTS", "PRIOR", "in_words", "posterior"]
