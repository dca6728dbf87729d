"""The kernels and HSIC estimators of linear CKA (:mod:`analysis.analyses.cka`), in a module of their own so that the
depth analyses' shared test pass (:func:`analysis.analyses._features.test_points`) computes CKA's HSIC without
importing the analysis that reads it."""

from __future__ import annotations

import torch


def gram(x: torch.Tensor) -> torch.Tensor:
    """The linear kernel of n examples (n x ...), in float64."""
    x = x.flatten(1).double()
    return x @ x.T


def centred_gram(x: torch.Tensor) -> torch.Tensor:
    """The linear kernel of n examples' features centred over the n (each feature less its mean), multiplied in
    float32 and returned in float64: what :func:`analysis.analyses.cka.cka_matrix` feeds the HSIC estimators. Both estimators are
    unchanged when every example's features move by the same vector (the biased one exactly; the unbiased one, a
    U-statistic, also: ``tests/analyses/test_depth.py`` holds both to 1e-9), so centring changes no CKA; it removes
    the large common part of the post-ReLU features (all positive) before the product, which is what lets float32
    give the float64 kernels' CKA (the features as they are) to 1e-8 on resnet56's and plain56's 500 test images, the
    whole CKA of a 56-layer net 1.5x faster (``benchmarks/analysis_steps.py cka``)."""
    with torch.autocast(x.device.type, enabled=False):  # float32 as stated, also inside the test pass's bf16 autocast
        x = x.flatten(1).float()
        x = x - x.mean(0, dtype=torch.float64).float()
        return (x @ x.T).double()


def hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Song et al. (2012)'s unbiased HSIC₁ of two n x n kernels (n >= 4)."""
    n = k.shape[0]
    if n < 4:
        raise ValueError("the unbiased HSIC needs at least 4 examples per minibatch")
    k = k.clone().fill_diagonal_(0.0)
    l = l.clone().fill_diagonal_(0.0)
    ones = torch.ones(n, dtype=k.dtype, device=k.device)
    kl = k @ l
    return (torch.trace(kl) + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (ones @ kl @ ones)) / (n * (n - 3))


def hsic_biased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """The centred (biased) HSIC of Gretton et al. (2005): tr(KHLH) / (n - 1)²."""
    n = k.shape[0]
    h = torch.eye(n, dtype=k.dtype, device=k.device) - 1.0 / n
    return torch.trace(k @ h @ l @ h) / (n - 1) ** 2


def hsic_matrices(grams: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(unbiased, biased) HSIC of every pair of one minibatch's kernels (p of them, each n x n), as p x p matrices:
    :func:`hsic_unbiased` and :func:`hsic_biased` for all pairs at once. Both are inner products of transformed
    kernels: with the diagonals zeroed (K̃), tr(K̃L̃) = <K̃, L̃> and 1ᵀK̃L̃1 = (K̃1)·(L̃1) for symmetric kernels, and
    tr(KHLH) = <HKH, HLH>; so one product of the flattened kernels gives every pair, O(p²n²) where a product of two
    n x n matrices per pair took O(p²n³) (the test holds the two to 1e-10)."""
    k = torch.stack(grams)
    n = k.shape[1]
    kt = k.clone()
    kt.diagonal(dim1=1, dim2=2).zero_()
    r = kt.sum(2)  # p x n: the row sums K̃1
    tot = r.sum(1)  # p: 1ᵀK̃1
    flat = kt.flatten(1)
    unbiased = (flat @ flat.T + tot[:, None] * tot[None, :] / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (r @ r.T)) / (
        n * (n - 3))
    kc = (k - k.mean(1, keepdim=True) - k.mean(2, keepdim=True) + k.mean((1, 2), keepdim=True)).flatten(1)  # HKH
    return unbiased, (kc @ kc.T) / (n - 1) ** 2
