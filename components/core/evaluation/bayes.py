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

import math
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


# The fewest past decisions (with discordant rows) an empirical-Bayes estimate is made from.
MIN_HISTORY = 10
EB_METHOD = (
    "normal-normal empirical Bayes: each past comparison's accuracy gain estimate "
    "(c - b) / n ~ N(gain, ((b + c) / n - gain_hat^2) / n), the true gains of this team's "
    "challengers ~ N(mu, tau^2) fitted to all recorded decisions by maximum marginal "
    "likelihood; the share is the mean over deploys of P(gain <= 0 | its counts)"
)


def history_not_better(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How often this team's deploys are not better, estimated from its recorded decisions
    (registry history records: each with ``counts`` and ``deploy``), by empirical Bayes
    (EB_METHOD). Every decision is used to fit the prior, deployed or not, so the selection
    of the deploys is accounted for by the posterior. None with fewer than MIN_HISTORY
    usable decisions or no deploy. An estimate under a stated model (normal spread of
    true gains across challengers), not a guarantee."""
    x, v, deployed = [], [], []
    for record in history:
        counts = record.get("counts") if isinstance(record, dict) else None
        if not isinstance(counts, dict) or "deploy" not in record:
            continue
        try:
            n = int(counts["test_rows"])
            b = int(counts["only_champion_right"])
            c = int(counts["only_challenger_right"])
        except (KeyError, TypeError, ValueError):
            continue
        if n <= 0 or b + c <= 0:
            continue
        gain = (c - b) / n
        x.append(gain)
        v.append(max(((b + c) / n - gain * gain) / n, 1.0 / (n * n)))
        deployed.append(bool(record["deploy"]))
    if len(x) < MIN_HISTORY or not any(deployed):
        return None
    xs, vs, dep = np.array(x), np.array(v), np.array(deployed)
    mu, tau = _fit_normal_prior(xs, vs)
    post_var = 1.0 / (1.0 / tau**2 + 1.0 / vs)
    post_mean = post_var * (mu / tau**2 + xs / vs)
    p_not_better = sps.norm.cdf(-post_mean / np.sqrt(post_var))
    return {
        "method": EB_METHOD,
        "decisions": int(xs.size),
        "deploys": int(dep.sum()),
        "prior_mean_gain": mu,
        "prior_sd_gain": tau,
        "share_of_deploys_not_better": float(p_not_better[dep].mean()),
    }


def _fit_normal_prior(x: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Maximum marginal likelihood of x_i ~ N(mu, tau^2 + v_i): mu in closed form given
    tau, tau by a bounded search (at least 1e-6, so a posterior exists)."""
    from scipy import optimize

    def mu_of(tau: float) -> float:
        w = 1.0 / (tau * tau + v)
        return float(np.dot(w, x) / w.sum())

    def neg_loglik(log_tau: float) -> float:
        tau = math.exp(log_tau)
        total = tau * tau + v
        return float(0.5 * np.sum(np.log(total) + (x - mu_of(tau)) ** 2 / total))

    spread = max(float(np.std(x)), 1e-4)
    res = optimize.minimize_scalar(
        neg_loglik, bounds=(math.log(1e-6), math.log(10 * spread)), method="bounded"
    )
    tau = math.exp(float(res.x))
    return mu_of(tau), tau


__all__ = ["COSTS", "EB_METHOD", "PRIOR", "history_not_better", "in_words", "posterior"]
