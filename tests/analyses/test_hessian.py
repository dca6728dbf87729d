"""Hessian curvature and shattered gradients against known answers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from analysis.core.common import random_sample
from analysis.analyses.hessian import (density_grid, hessian_analysis, hutchinson_trace, lanczos, lanczos_eigenvalues,
                                       model_hvp, top_eigenvalues)
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


def test_lanczos_finds_the_top_eigenvalues_in_far_fewer_products_than_power_iteration():
    eigs = [-12.0, 10.0, 9.5, 9.0] + list(np.linspace(5.0, 0.01, 396))  # close top eigenvalues, a negative one first
    a = quadratic(eigs, seed=4)
    template = [torch.zeros(400, dtype=torch.float64)]
    calls = {"lanczos": 0, "power": 0}

    def counted(kind):
        def hvp(v):
            calls[kind] += 1
            return [a @ v[0]]
        return hvp

    got, run = lanczos_eigenvalues(counted("lanczos"), template, k=3, max_iter=400, tol=1e-10)
    assert [round(e["eigenvalue"], 8) for e in got] == [-12.0, 10.0, 9.5]  # largest magnitude first
    assert all(e["converged"] for e in got) and calls["lanczos"] == len(run.alphas) < 120
    for e in got:  # the Ritz vectors are the eigenvectors: ‖Av − λv‖ ≈ 0, unit norm
        v = e["vector"][0]
        assert float(v.norm()) == pytest.approx(1.0) and float((a @ v - e["eigenvalue"] * v).norm()) < 1e-4
    power = top_eigenvalues(counted("power"), template, k=1, max_iter=3000, tol=1e-10)[0]
    assert power["eigenvalue"] == pytest.approx(-12.0, rel=1e-6)
    assert calls["power"] > 3 * len(run.alphas)  # the same eigenvalue to the same tolerance


def test_the_trace_deflated_by_a_krylov_basis_is_unbiased_exact_on_the_whole_space_and_less_spread():
    from analysis.core.krylov import krylov_run

    eigs = [40.0, 30.0, 20.0] + list(np.linspace(1.0, -0.5, 30))  # three outliers over a small bulk: 97.5
    a1, a2 = quadratic(eigs[:18], seed=5), quadratic(eigs[18:], seed=6)

    def hvp(v):
        return [a1 @ v[0], a2 @ v[1]]

    template = [torch.zeros(18, dtype=torch.float64), torch.zeros(15, dtype=torch.float64)]
    exact = {"all": sum(eigs), "first": float(torch.trace(a1)), "second": float(torch.trace(a2))}
    scopes = {"first": [0], "second": [1]}
    whole = krylov_run(hvp, template, steps=33, seed=1)  # distinct eigenvalues: it spans all, no variance left
    assert len(whole.alphas) == 33
    rows = {r["scope"]: r for r in hutchinson_trace(hvp, template, scopes, max_iter=6, tol=0.0, krylov=whole)}
    for s, want in exact.items():
        assert rows[s]["trace"] == pytest.approx(want, abs=1e-8) and rows[s]["trace_std_error"] < 1e-8
    part = krylov_run(hvp, template, steps=6, seed=2)  # the three outliers are in it, the bulk is not
    deflated = {r["scope"]: r for r in hutchinson_trace(hvp, template, scopes, max_iter=3000, tol=0.0, krylov=part)}
    plain = hutchinson_trace(hvp, template, max_iter=3000, tol=0.0)[0]
    for s, want in exact.items():
        assert abs(deflated[s]["trace"] - want) < 4 * deflated[s]["trace_std_error"], (s, deflated[s], want)
    assert deflated["all"]["deflated_by"] == 6 and plain["deflated_by"] == 0
    assert deflated["all"]["trace_std_error"] < 0.5 * plain["trace_std_error"]
    # with a target standard error, it stops as soon as the samples reach it
    target = 2 * plain["trace_std_error"]  # about a quarter of the samples
    stopped = hutchinson_trace(hvp, template, max_iter=3000, tol=0.0, target_se=target)[0]
    assert stopped["converged"] and stopped["trace_std_error"] <= target and 100 < stopped["iterations"] < 3000


def test_eval_batchnorm_is_the_same_function_with_the_same_names():
    from analysis.core.blocks import EvalBatchNorm, with_eval_batchnorm
    from analysis.core.common import private_copy

    m = tiny(True, 14)
    for mod in m.modules():  # running statistics and affine parameters away from their initial values
        if isinstance(mod, torch.nn.BatchNorm2d):
            g = torch.Generator().manual_seed(mod.num_features)
            for t in (mod.weight.data, mod.bias.data, mod.running_mean):
                t.copy_(torch.randn(t.shape, generator=g))
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.1)
    m.eval()
    e = with_eval_batchnorm(private_copy(m))
    assert any(isinstance(x, EvalBatchNorm) for x in e.modules())
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in e.modules())
    assert [n for n, _ in e.named_parameters()] == [n for n, _ in m.named_parameters()]
    assert [n for n, _ in e.named_buffers()] == [n for n, _ in m.named_buffers()]
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(e(x), m(x), rtol=1e-5, atol=1e-5)


def test_lanczos_and_power_iteration_give_the_same_curvature_of_a_net():
    m = tiny(True, 8)
    b = random_sample(12, 0, torch.device("cpu"))
    lz, dens, vec = hessian_analysis(m, b, "t", top_k=2, max_iter=60, tol=1e-6, trace_iter=4, lanczos_steps=6)
    pw, _, _ = hessian_analysis(m, b, "t", top_k=2, max_iter=600, tol=1e-9, trace_iter=4, lanczos_steps=6,
                                eigen="power")
    e_l = lz[lz["quantity"] == "eigenvalue"].set_index("k")
    e_p = pw[pw["quantity"] == "eigenvalue"].set_index("k")
    assert e_l.loc[1, "value"] == pytest.approx(e_p.loc[1, "value"], rel=1e-4)
    assert e_l.loc[2, "value"] == pytest.approx(e_p.loc[2, "value"], rel=1e-3)
    assert e_l.loc[1, "algorithm"].startswith("Lanczos") and e_p.loc[1, "algorithm"].startswith("power")
    assert lz["hvps"].iloc[0] < pw["hvps"].iloc[0]
    # the density's run is the eigenvalue run's first six steps: the same as a six-step run from that start
    hvp, template, _ = model_hvp(m, b)
    nodes, weights = lanczos(hvp, template, 6, seed=100)
    from analysis.analyses.hessian import density_grid

    grid, want, _ = density_grid([nodes], [weights])
    np.testing.assert_allclose(dens["density"].to_numpy(), want, rtol=1e-4, atol=1e-6 * want.max())
    tr = lz[(lz["quantity"] == "trace") & (lz["scope"] == "all")].iloc[0]
    assert "deflated by" in tr["algorithm"]
