"""Similarity kernels between embeddings, in log space.

Probabilistic embeddings are diagonal Gaussians N(mu, diag(sigma^2)). Their
Bhattacharyya kernel (paper eq. 1 with the square restored, METHOD_NOTES §1) is

    log kappa = - sum_d (mu_a - mu_b)^2 / (4 (va + vb))
                - 1/2 sum_d log((s_a/s_b + s_b/s_a) / 2)

with va = s_a^2. Everything here works on log-variances ``logvar = 2 log sigma``:
``(s_a/s_b + s_b/s_a)/2 = cosh((lva - lvb)/2)``, so the beta term is a
log cosh, finite for any sigma, and log kappa stays finite where kappa itself
underflows.

Sigma (and logvar) has a last dimension D = 3 (anisotropic) or 1 (isotropic);
an isotropic value stands for the same variance on all 3 axes, so its beta
term counts 3 times (eq. 3: beta = ((s_a/s_b + s_b/s_a)/2)^(-3/2)).
Homo- and heteroscedastic variants differ only in where sigma comes from.

The deterministic embedding uses an RBF kernel, defined as the Bhattacharyya
kernel of two Gaussians with the same fixed isotropic sigma ``rbf_sigma``:
log kappa = -||mu_a - mu_b||^2 / (8 rbf_sigma^2) (beta = 1). The same loss
and clustering code then serves both; kappa = tau = 0.35 is reached at a
distance of 2.9 rbf_sigma, kappa = 0.5 at 2.35 rbf_sigma.

Embedding dimension E: mu is (..., 3), or (..., 6) for the 6-D deterministic
embedding (Table 4's ExtDim). Every function takes E from mu's last axis; an
isotropic (D = 1) variance counts on all E axes, so the 6-D RBF kernel is the
same formula summed over 6 dims. Anisotropic variances (D = 3) need E = 3.
"""

from __future__ import annotations

import math

import torch

LOG2 = math.log(2.0)


def logvar_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """log(sigma^2); sigma must be > 0."""
    return 2.0 * torch.log(sigma)


def rbf_logvar(n: int, rbf_sigma: float, like: torch.Tensor) -> torch.Tensor:
    """(n, 1) constant log-variance of the deterministic (RBF) embedding."""
    return torch.full((n, 1), 2.0 * math.log(rbf_sigma), dtype=like.dtype, device=like.device)


def log_bhattacharyya(
    mu_a: torch.Tensor, logvar_a: torch.Tensor, mu_b: torch.Tensor, logvar_b: torch.Tensor
) -> torch.Tensor:
    """log kappa between Gaussians, broadcast over leading dims.

    mu_*: (..., E); logvar_*: (..., D) with D = 1 or D = E. Returns (...).
    """
    dim = mu_a.shape[-1]
    log_vsum = torch.logaddexp(logvar_a, logvar_b)  # (..., D')
    quad = ((mu_a - mu_b) ** 2 * torch.exp(-log_vsum)).sum(-1) / 4.0
    # log((sa/sb + sb/sa)/2) = log cosh(d/2), d = lva - lvb; written so that it
    # is exactly 0 for d = 0 (kappa = 1 for equal Gaussians) and never overflows.
    half = 0.5 * torch.abs(logvar_a - logvar_b)
    log_ratio = half + torch.nn.functional.softplus(-2.0 * half) - LOG2
    reps = dim if log_ratio.shape[-1] == 1 else 1  # isotropic: same term on every axis
    return -quad - 0.5 * reps * log_ratio.sum(-1)


def log_kappa_sigma(
    mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor
) -> torch.Tensor:
    """Same as :func:`log_bhattacharyya` with standard deviations as input."""
    return log_bhattacharyya(mu_a, logvar_from_sigma(sigma_a), mu_b, logvar_from_sigma(sigma_b))


def log_rbf(mu_a: torch.Tensor, mu_b: torch.Tensor, rbf_sigma: float) -> torch.Tensor:
    """Deterministic kernel: -||mu_a - mu_b||^2 / (8 rbf_sigma^2), broadcast."""
    return -((mu_a - mu_b) ** 2).sum(-1) / (8.0 * rbf_sigma**2)


def log_kappa_to_instances(
    mu: torch.Tensor, logvar: torch.Tensor, c_mu: torch.Tensor, c_logvar: torch.Tensor
) -> torch.Tensor:
    """Point-to-instance form: (N, E), (N, D) vs (K, E), (K, D) -> (N, K).

    The hot loop of the loss, so it uses fewer (N, K, 3) operations than
    :func:`log_bhattacharyya`: with v = exp(logvar),
    sum_d log((sa/sb + sb/sa)/2) = sum_d log(va + vb) - D log 2 - (sum lva + sum lvb)/2,
    the last two sums per point / per instance. Equal to log_bhattacharyya up to
    rounding (not exactly 0 for identical Gaussians). Memory is N*K*E; callers
    chunk over K (see losses_probabilistic).
    """
    dim = mu.shape[-1]
    d = max(logvar.shape[-1], c_logvar.shape[-1])
    reps = dim if d == 1 else 1
    vsum = torch.exp(logvar)[:, None, :] + torch.exp(c_logvar)[None, :, :]  # (N, K, D)
    quad = ((mu[:, None, :] - c_mu[None, :, :]) ** 2 / vsum).sum(-1)
    per_point = 0.25 * reps * logvar.sum(-1) * (d / logvar.shape[-1])
    per_inst = 0.25 * reps * c_logvar.sum(-1) * (d / c_logvar.shape[-1]) + 0.5 * reps * d * LOG2
    return -0.25 * quad - 0.5 * reps * torch.log(vsum).sum(-1) + per_point[:, None] + per_inst[None, :]


def log_kappa_to_point(mu: torch.Tensor, logvar: torch.Tensor, j: int) -> torch.Tensor:
    """Point-to-point form, one row: all N points against point j -> (N,)."""
    return log_bhattacharyya(mu, logvar, mu[j : j + 1], logvar[j : j + 1])


def instance_centres(
    mu: torch.Tensor, logvar: torch.Tensor, index: torch.Tensor, num: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian of the mean embedding of each instance (eq. 4b, 4c).

    mu (N, E), logvar (N, D), index (N,) long in [0, num). Returns c_mu (num, E)
    = mean of mu, c_logvar (num, D) = log of the mean variance, counts (num,).
    The mean variance is a per-group logsumexp, stable for any sigma.
    Every group must be non-empty.
    """
    counts = torch.bincount(index, minlength=num).to(mu.dtype)
    c_mu = torch.zeros(num, mu.shape[1], dtype=mu.dtype, device=mu.device)
    c_mu = c_mu.index_add(0, index, mu) / counts[:, None]
    d = logvar.shape[1]
    # Shift by the per-group max (detached: the shift cancels exactly) before exp.
    gmax = torch.full((num, d), -torch.inf, dtype=logvar.dtype, device=logvar.device)
    gmax = gmax.scatter_reduce(0, index[:, None].expand(-1, d), logvar.detach(), reduce="amax")
    shifted = torch.exp(logvar - gmax[index])
    ssum = torch.zeros(num, d, dtype=logvar.dtype, device=logvar.device).index_add(0, index, shifted)
    c_logvar = torch.log(ssum) + gmax - torch.log(counts)[:, None]
    return c_mu, c_logvar, counts
