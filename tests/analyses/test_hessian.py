"""Hessian curvature and shattered gradients against known answers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from analysis.core.common import random_sample
from analysis.analyses.hessian import (density_grid, hessian_analysis, hutchinson_trace, lanczos, model_hvp, top_eigenvalues)
from analysis.analyses.shattering import autocorrelation, correlation_length, line_inputs, shattering
from conftest import tiny


def quadratic(eigs, seed=0):
    """A symmetric matrix with the given eigenvalues and a random eigenbasis; its HVP is A v."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


def test_power_iteration_finds_the_top_eigenvalues_of_a_quadratic():
    eigs = [10.0, 6.0, 3.0] + list(np.linspace(1.0, 0.01, 37))
    a = quadratic(eigs)
    got = top_eigenvalues(lambda v: [a @ v[0]], [torch.zeros(40, dtype=torch.float64)], k=3, max_iter=2000, tol=1e-10)
    for e, want in zip(got, [10.0, 6.0, 3.0]):
        assert e["converged"] and e["eigenvalue"] == pytest.approx(want, rel=0.01)
    # the eigenvectors found are orthonormal
    v = torch.stack([e["vector"][0] for e in got])
    torch.testing.assert_close(v @ v.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_hutchinson_trace_of_a_quadratic_with_scopes():
    a1, a2 = quadratic([5.0, 4.0, 3.0, 2.0, 1.0] * 4, seed=1), quadratic([2.0, 1.0, 0.5, 0.25] * 5, seed=2)

    def hvp(v):
        return [a1 @ v[0], a2 @ v[1]]

    template = [torch.zeros(20, dtype=torch.float64), torch.zeros(20, dtype=torch.float64)]
    rows = {r["scope"]: r for r in hutchinson_trace(hvp, template, scopes={"first": [0], "second": [1]},
                                                     max_iter=4000, tol=0.0)}
    assert rows["all"]["trace"] == pytest.approx(60.0 + 18.75, rel=0.01)
    assert rows["first"]["trace"] == pytest.approx(60.0, rel=0.01)
    assert rows["second"]["trace"] == pytest.approx(18.75, rel=0.01)
    assert rows["all"]["trace_std_error"] < 0.005 * 78.75


def test_lanczos_quadrature_recovers_the_spectrum():
    eigs = [9.0, 4.0] + [1.0] * 20 + [0.0] * 8
    a = quadratic(eigs, seed=3)
    nodes, weights = lanczos(lambda v: [a @ v[0]], [torch.zeros(30, dtype=torch.float64)], steps=30)
    assert weights.sum() == pytest.approx(1.0, rel=1e-9)
    assert nodes.max() == pytest.approx(9.0, rel=1e-6)
    # the quadrature's first moment is vᵀAv for the start vector; over many starts it is trace / n
    means = []
    for s in range(200):
        nd, wt = lanczos(lambda v: [a @ v[0]], [torch.zeros(30, dtype=torch.float64)], steps=8, seed=s)
        means.append(float((nd * wt).sum()))
    assert np.mean(means) == pytest.approx(sum(eigs) / 30, rel=0.03)
    grid, dens, sigma = density_grid([nodes], [weights])
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, rel=0.02)


def full_hessian(m, b):
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for _, p in m.named_parameters()]
    flat = torch.cat([p.detach().flatten() for _, p in m.named_parameters()]).double()
    buffers = {n: t.double() for n, t in m.named_buffers()}
    mm = m.double()

    def loss(theta):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            k = math.prod(s)
            parts[n] = theta[i:i + k].view(s)
            i += k
        return F.cross_entropy(functional_call(mm, (parts, buffers), (b.x.double(),)), b.y)

    return torch.autograd.functional.hessian(loss, flat)


@pytest.mark.slow
def test_on_a_tiny_net_hutchinson_and_power_iteration_match_the_full_hessian():
    m = tiny(True, 8, width=2)
    b = random_sample(6, 0, torch.device("cpu"))
    h = full_hessian(tiny(True, 8, width=2), b)
    exact_trace = float(torch.trace(h))
    eig = torch.linalg.eigvalsh(h)
    top = float(eig[eig.abs().argmax()])
    hvp, template, _ = model_hvp(m, b)
    rows = hutchinson_trace(hvp, template, max_iter=300, tol=0.0, seed=5)
    est = rows[0]
    assert abs(est["trace"] - exact_trace) < 3.5 * est["trace_std_error"], (est, exact_trace)
    got = top_eigenvalues(hvp, template, k=1, max_iter=500, tol=1e-7)[0]
    assert got["eigenvalue"] == pytest.approx(top, rel=0.01)


def test_func_and_double_backward_hvps_agree_and_leave_the_model_alone():
    m = tiny(True, 8)
    b = random_sample(10, 0, torch.device("cpu"))
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(m.parameters())]
    h1, t1, _ = model_hvp(tiny(True, 8), b, chunk=4, method="func")
    h2, _, _ = model_hvp(tiny(True, 8), b, chunk=10, method="double_backward")
    for a, c in zip(h1(v), h2(v)):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    # the kept graph (built once per chunk, here three chunks) gives the same products, call after call
    h3, _, _ = model_hvp(tiny(True, 8), b, chunk=4, method="kept_graph")
    w = [torch.randn(p.shape, generator=torch.Generator().manual_seed(100 + i)) for i, p in enumerate(m.parameters())]
    for vec in (v, w, v):
        for a, c in zip(h3(vec), h2(vec)):
            torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    from analysis.analyses.hessian import resolve_method

    assert resolve_method("auto", 250, 250) == "kept_graph" and resolve_method("auto", 251, 250) == "func"
    df, dens, vec = hessian_analysis(m, b, "t", top_k=2, max_iter=5, trace_iter=6, lanczos_steps=4)
    assert set(df["scope"]) == {"all", "stem", "stage1", "stage2", "stage3", "head"}
    scopes = df[(df["quantity"] == "trace") & (df["scope"] != "all")]["value"].sum()
    total = df[(df["quantity"] == "trace") & (df["scope"] == "all")]["value"].iloc[0]
    assert scopes == pytest.approx(total, rel=1e-6)  # the same samples, split by parameter group
    assert list(df[df["quantity"] == "eigenvalue"]["k"]) == [1, 2] and (dens["density"] >= 0).all()


def test_a_linear_model_has_perfectly_correlated_input_gradients():
    w = torch.randn(3 * 32 * 32, generator=torch.Generator().manual_seed(0))
    a, b = torch.randn(3, 32, 32), torch.randn(3, 32, 32)
    x, _ = line_inputs(a, b, 20)
    xs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((xs.flatten(1) @ w).sum(), xs)
    ac = autocorrelation(g, x)
    assert np.allclose(ac["correlation"], 1.0)
    length, censored = correlation_length(ac)
    assert censored and length == pytest.approx(float((x[-1] - x[0]).norm()), rel=1e-6)


def test_white_noise_gradients_decorrelate_within_one_step():
    g = torch.randn(50, 3072, generator=torch.Generator().manual_seed(1))
    x, _ = line_inputs(torch.zeros(3, 32, 32), torch.ones(3, 32, 32), 50)
    ac = autocorrelation(g, x)
    assert ac.loc[0, "correlation"] == pytest.approx(1.0) and abs(ac.loc[1:, "correlation"]).max() < 0.1
    length, censored = correlation_length(ac)
    assert not censored and length < ac.loc[1, "distance"]


def test_shattering_on_a_tiny_net_reads_every_block():
    m = tiny(True, 14)
    x, _ = line_inputs(torch.randn(3, 32, 32), torch.randn(3, 32, 32), 8)
    rows, curves = shattering(m, x, "t", "trained")
    assert list(rows["readout"]) == m.block_names() + ["output"]
    assert (curves[curves["lag"] == 0]["correlation"] - 1).abs().max() < 1e-9
    r2, _ = shattering(m, x, "t", "init", lam=0.0)
    assert set(r2["lambda"]) == {0.0} and not r2["correlation_length"].equals(rows["correlation_length"])


def test_the_landscape_direction_is_an_eigenvector_of_the_hessian():
    """Hv = λv for the direction the Loss landscape page uses (a finite-difference check would not do: the
    ReLU kinks a small step crosses add curvature that the Hessian, piecewise, does not have)."""
    from analysis.core.common import private_copy
    from analysis.analyses.hessian import model_hvp
    from analysis.analyses.landscape import hessian_direction, landscape

    m = tiny(True, 8)
    b = random_sample(16, 0, torch.device("cpu"))
    d, lam = hessian_direction(m, b, max_iter=300)
    names = [n for n, _ in m.named_parameters()]
    v = [d[n] for n in names]
    hvp, _, _ = model_hvp(private_copy(m), b)
    hv = hvp(v)
    resid = math.sqrt(sum(float(((h - lam * x) ** 2).sum()) for h, x in zip(hv, v)))
    norm = math.sqrt(sum(float(((lam * x) ** 2).sum()) for x in v))
    assert resid < 0.05 * norm, resid / norm
    theta = math.sqrt(sum(float((p.detach() ** 2).sum()) for p in m.parameters()))
    assert math.sqrt(sum(float((x ** 2).sum()) for x in v)) == pytest.approx(theta, rel=1e-4)  # rescaled to ‖θ‖
    df = landscape(m, b, "t", [-0.5, 0.0, 0.5], None, direction=d, direction_name="hessian", bf16=False)
    assert set(df["direction"]) == {"hessian"} and df["loss"].iloc[1] < df["loss"].max()
