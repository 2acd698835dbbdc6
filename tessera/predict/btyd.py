"""Buy-till-you-die models: BG/NBD for the number of future purchases and the probability
a customer is still active, Gamma-Gamma for the spend per purchase. Pure numpy/scipy.

BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers" the Easy Way: An Alternative
to the Pareto/NBD Model, Marketing Science 24(2). While active, a customer buys as a Poisson
process with rate λ ~ Gamma(r, α); after each purchase they drop out with probability
p ~ Beta(a, b). The sufficient statistics per customer are (x, t_x, T): repeat purchases in
the calibration period, the time of the last one, and the time since the first purchase.

Gamma-Gamma: Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note), after
Colombo & Jiang (1999). Spend per transaction z ~ Gamma(p, ν), ν ~ Gamma(q, γ) across
customers, independent of the purchase process; fitted on the mean spend m_x of customers
with x > 0 repeat purchases.

Parameters are fitted by maximum likelihood on their logarithms (so they stay positive)
with L-BFGS-B; the log-likelihoods are the papers' equations (BG/NBD eq. 6, Gamma-Gamma
eq. 3 of the note), summed over customers with a weight each (identical rows collapse).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters: λ ~ Gamma(r, α), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def p_alive(self, x: Array, t_x: Array, big_t: Array) -> Array:
        """P(still active at T | x, t_x, T): eq. (12) of the paper."""
        x, t_x, big_t = _arrays(x, t_x, big_t)
        ratio = (
            self.a
            / (self.b + np.maximum(x, 1) - 1)
            * np.exp((self.r + x) * (np.log(self.alpha + big_t) - np.log(self.alpha + t_x)))
        )
        return np.asarray(np.where(x > 0, 1.0 / (1.0 + ratio), 1.0), dtype=np.float64)

    def expected_purchases(self, t: float, x: Array, t_x: Array, big_t: Array) -> Array:
        """E[Y(t) | x, t_x, T]: purchases expected in the next `t` periods, eq. (10)."""
        from scipy.special import hyp2f1  # imported when used: scipy is slow to import

        x, t_x, big_t = _arrays(x, t_x, big_t)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + big_t + t)
        head = (a + b + x - 1) / (a - 1)
        # log of ((α+T)/(α+T+t))^(r+x), kept in logs: (r+x) reaches hundreds.
        shrink = np.exp((r + x) * (np.log(alpha + big_t) - np.log(alpha + big_t + t)))
        body = 1.0 - shrink * hyp2f1(r + x, b + x, a + b + x - 1, z)
        alive_odds = np.where(
            x > 0,
            a
            / (b + np.maximum(x, 1) - 1)
            * np.exp((r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x))),
            0.0,
        )
        return np.asarray(head * body / (1.0 + alive_odds), dtype=np.float64)

    def unconditional_purchases(self, t: Array) -> Array:
        """E[X(t)]: purchases expected of a new customer in `t` periods, eq. (9)."""
        from scipy.special import hyp2f1

        t = np.asarray(t, dtype=np.float64)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + t)
        value = (
            (a + b - 1) / (a - 1) * (1.0 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))
        )
        return np.asarray(value, dtype=np.float64)


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters: spend ~ Gamma(p, ν), ν ~ Gamma(q, γ)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float

    def expected_spend(self, x: Array, m_x: Array) -> Array:
        """E[M | x, m_x]: the expected spend per purchase, eq. (5) of the note; the
        population mean p·γ/(q−1) for customers with no repeat purchase."""
        x, m_x = _arrays(x, m_x)
        population = self.p * self.gamma / (self.q - 1)
        individual = (self.gamma + x * m_x) * self.p / (self.p * x + self.q - 1)
        return np.asarray(np.where(x > 0, individual, population), dtype=np.float64)


def bgnbd_log_likelihood(
    params: Array, x: Array, t_x: Array, big_t: Array, weights: Array
) -> float:
    """Σ weight · ln L(r, α, a, b | x, t_x, T), eq. (6) of the paper."""
    from scipy.special import gammaln

    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + big_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return float(np.sum(weights * (a1 + a2 + np.logaddexp(a3, a4))))


def fit_bgnbd(x: Array, t_x: Array, big_t: Array) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for customers' (x, t_x, T).

    Raises:
        ValueError: with fewer than two customers or no repeat purchase at all (the
            dropout process is then not identified).
    """
    x, t_x, big_t = _arrays(x, t_x, big_t)
    if x.size < 2 or not np.any(x > 0):
        raise ValueError("BG/NBD needs at least two customers and one repeat purchase")
    rows, weights = _collapse(np.column_stack([x, t_x, big_t]))
    cx, ct, cT = rows[:, 0], rows[:, 1], rows[:, 2]
    scale = 10.0 / max(float(np.max(cT)), 1e-9)  # fit in a unit where T is ~10 (α's scale)

    def loss(log_params: Array) -> float:
        value = bgnbd_log_likelihood(np.exp(log_params), cx, ct * scale, cT * scale, weights)
        return -value if np.isfinite(value) else 1e300

    from scipy.optimize import minimize  # seconds to import: only when fitting

    found = minimize(loss, np.zeros(4), method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
    r, alpha, a, b = np.exp(found.x)
    alpha /= scale
    ll = bgnbd_log_likelihood(np.array([r, alpha, a, b]), cx, ct, cT, weights)
    return BgNbd(float(r), float(alpha), float(a), float(b), ll)


def gamma_gamma_log_likelihood(params: Array, x: Array, m_x: Array, weights: Array) -> float:
    """Σ weight · ln L(p, q, γ | x, m_x) over customers with x > 0, eq. (3) of the note."""
    from scipy.special import gammaln

    p, q, gamma = params
    value = (
        gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(gamma)
        + (p * x - 1) * np.log(m_x) + p * x * np.log(x) - (p * x + q) * np.log(gamma + x * m_x)
    )  # fmt: skip
    return float(np.sum(weights * value))


def fit_gamma_gamma(x: Array, m_x: Array) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from repeat customers' mean spend.

    Customers with x = 0 or a spend that is not positive are left out (the model is of
    positive spend on repeat purchases).

    Raises:
        ValueError: with fewer than two repeat customers with positive spend.
    """
    x, m_x = _arrays(x, m_x)
    keep = (x > 0) & (m_x > 0) & np.isfinite(m_x)
    if int(np.sum(keep)) < 2:
        raise ValueError("Gamma-Gamma needs at least two repeat customers with a positive spend")
    rows, weights = _collapse(np.column_stack([x[keep], m_x[keep]]))
    cx, cm = rows[:, 0], rows[:, 1]
    scale = 10.0 / float(np.mean(cm))  # spend in a unit near 10: γ's scale

    def loss(log_params: Array) -> float:
        value = gamma_gamma_log_likelihood(np.exp(log_params), cx, cm * scale, weights)
        return -value if np.isfinite(value) else 1e300

    from scipy.optimize import minimize

    found = minimize(loss, np.zeros(3), method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 3)
    p, q, gamma = np.exp(found.x)
    gamma /= scale
    ll = gamma_gamma_log_likelihood(np.array([p, q, gamma]), cx, cm, weights)
    return GammaGamma(float(p), float(q), float(gamma), ll)


def _arrays(*values: Array) -> tuple[Array, ...]:
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def _collapse(rows: Array) -> tuple[Array, Array]:
    """Identical rows once, with how many there were (the likelihood is a weighted sum)."""
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique, counts.astype(np.float64)
