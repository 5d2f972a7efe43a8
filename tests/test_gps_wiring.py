"""The wiring of one GPS iteration (docs/method.md §7.4, §7.8, §7.11, §7.12, §7.14).

``badmm_inner`` and ``_mdgps_inner`` run on a tiny synthetic problem (random linear dynamics,
convex quadratic cost, random controllers) with stand-ins for the policy class and π̄ that record
what they are given; the C-step is the real one, wrapped to record its arguments. Each test checks
one step against the method: which controller a step is centred on, which duals and which π̄ it
sees, the KL bound it meets, and the costs the step adaptation compares.
"""
import types

import numpy as np
import pytest

from conftest import random_controller, random_cost, random_dynamics
from lto_ref import gps, policy
from lto_ref.gps import badmm, iteration as it, lingauss, lqr, sstep

M, N, T, dX, dU = 2, 6, 4, 3, 2
VAR = np.array([0.3, 0.5])                       # the stand-in policy's action variance


def _same(a, b):
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa, fb)


def _kl_to(dyn, new, centre):
    """KL(new ‖ centre) under new's marginals (docs/method.md (74))."""
    return lingauss.traj_kl(*lqr.forward(dyn, new), new, centre)


class Run:
    """One call of ``badmm_inner`` or ``_mdgps_inner`` with everything it was handed recorded."""

    def __init__(self, monkeypatch, *, algorithm="badmm", i=1, inner=3, prev_costs=True, seed=0):
        rng = np.random.default_rng(seed)
        self.dyn, self.cost = random_dynamics(rng, M, T, dX, dU), random_cost(rng, M, T, dX, dU)
        self.samples = types.SimpleNamespace(X=rng.standard_normal((M, N, T, dX)),
                                             O=rng.standard_normal((M, N, T, 5)))
        self.pibars = [random_controller(rng, M, T, dX, dU) for _ in range(inner + 2)]
        self.mu_base, self.mu_step = rng.standard_normal((2, M, N, T, dU))
        self.cfg = gps.Config(algorithm=algorithm, inner_iterations=inner, T=T, H=4, h=2,
                              samples=N, chunks=1)
        pol = (policy.init(rng, 5, dU, hidden=3)._replace(var=VAR) if algorithm == "mdgps"
               else 0)                          # the stand-in policy: a version number
        lg, nu = random_controller(rng, M, T, dX, dU), rng.uniform(0.05, 0.5, (M, T))
        # the last iteration's J₁, J₂ placed around this one's J₃ so that (78)'s ratio
        # (J₁ − J₂) / 2(J₃ − J₂) lies inside its clip range: no saturation hides a wrong J
        J3 = (badmm.model_cost(self.pibars[0], self.dyn, self.cost) if algorithm == "mdgps"
              else badmm.model_cost(lg, self.dyn, self.cost, self.pibars[0], nu))
        pc = (J3 + rng.uniform(0.2, 1, M), J3 - rng.uniform(1, 2, M)) if prev_costs else None
        self.st = it.GPSState(i, lg, np.ones(M), rng.uniform(0.5, 1.5, M), nu,
                              0.3 * rng.standard_normal((M, T, dU)), pol, i > 0, None, None,
                              None, pc)
        self.c_steps, self.s_steps, self.pibar_fits = [], [], []
        real_c_step = it._c_step

        def c_step(cost, dyn, center, eps, eta, **kw):
            out = real_c_step(cost, dyn, center, eps, eta, **kw)
            self.c_steps.append(dict(center=center, eps=eps, eta=eta, out=out,
                                     **{k: kw.get(k) for k in ("nu", "pi_bar", "lam_k")}))
            return out
        monkeypatch.setattr(it, "_c_step", c_step)
        if algorithm == "mdgps":
            def mdgps_s_step(rng_, st, samples, target, prec, w, cfg):
                self.s_steps.append(dict(target=target, prec=prec, w=w))
                return st.policy, True, None, 0.0
            monkeypatch.setattr(it, "_s_step", mdgps_s_step)
            self.out = it._mdgps_inner(self.st, self.samples, self.dyn, self.cost,
                                       self._fit_pibar, rng, self.cfg)
        else:
            ops = it.PolicyOps(mean=self._mean, s_step=self._s_step, variance=lambda pol: VAR)
            self.out = it.badmm_inner(self.st, self.samples, self.dyn, self.cost, self._fit_pibar,
                                      rng, self.cfg, ops)

    def _mean(self, pol, samples):
        return self.mu_base + pol * self.mu_step

    def _s_step(self, rng, st, samples, target, prec, w):
        self.s_steps.append(dict(target=target, prec=prec, w=w, policy=st.policy))
        return st.policy + 1, True, None, float(len(self.s_steps))

    def _fit_pibar(self, st, mu_pol):
        self.pibar_fits.append(mu_pol)
        return self.pibars[len(self.pibar_fits) - 1], f"gmms{len(self.pibar_fits)}"


# ------------------------------------------------------------------------------------- BADMM


@pytest.mark.parametrize("i", [0, 1])
def test_badmm_every_c_step_is_centred_on_the_sampling_controllers(monkeypatch, i):
    """(62), §7.4 step 6(d): KL(p ‖ p̂) ≤ ε around the sampling controllers p̂ at every j."""
    run = Run(monkeypatch, i=i)
    assert len(run.c_steps) == run.cfg.inner_iterations
    for call in run.c_steps:
        _same(call["center"], run.st.lg)


def test_badmm_result_meets_the_kl_bound_around_the_sampling_controllers(monkeypatch):
    """The returned controllers and the logged KL: within 10 % of ε of p̂ (§7.9's tolerance)."""
    run = Run(monkeypatch)
    st, kl, _ = run.out
    eps = T * run.cfg.kl_step * st.step_mult
    np.testing.assert_allclose(_kl_to(run.dyn, st.lg, run.st.lg), kl, rtol=1e-8)
    assert np.all(np.abs(kl - eps) < 0.1 * eps)
    _same(st.lg, run.c_steps[-1]["out"][0])                   # the last C-step's controllers
    np.testing.assert_array_equal(st.eta, run.c_steps[-1]["out"][1])


@pytest.mark.parametrize("i", [0, 1])
def test_badmm_s_steps_regress_onto_the_newest_controllers_with_the_current_duals(monkeypatch, i):
    """(81), (83): targets from the sampling controllers at j = 0, then the last C-step's; no
    S-step at i = j = 0."""
    run = Run(monkeypatch, i=i)
    newest = [run.st.lg] + [c["out"][0] for c in run.c_steps]
    skip = 1 if i == 0 else 0
    assert len(run.s_steps) == run.cfg.inner_iterations - skip
    for j, call in enumerate(run.s_steps, start=skip):
        nu, lam = run.st.nu, (run.st.lam_k if j == 0 else run.c_steps[j - 1]["lam_k"])
        target, prec = sstep.targets(newest[j], run.samples.X, nu=nu, lam_k=lam, form="code")
        np.testing.assert_array_equal(call["target"], target)
        np.testing.assert_array_equal(call["prec"], prec)
        np.testing.assert_array_equal(call["w"], sstep.weights(nu, N))
        assert call["policy"] == j - skip                     # each S-step continues the last


@pytest.mark.parametrize("i", [0, 1])
def test_badmm_lambda_follows_the_dual_step_after_every_s_step(monkeypatch, i):
    """(79), written out: λ ← λ + α ν P (mean μ_θ − mean(Kx + k)), with the newest controller and
    μ_θ after the S-step; the C-steps see the updated λ, the state carries the last."""
    run = Run(monkeypatch, i=i)
    X, lam, alpha = run.samples.X, run.st.lam_k, run.cfg.dual_rate
    newest = [run.st.lg] + [c["out"][0] for c in run.c_steps]
    for j, call in enumerate(run.c_steps):
        if not (i == 0 and j == 0):
            lg = newest[j]
            mu_pol = run._mean(j + (0 if i == 0 else 1), None)
            u = np.einsum("mtij,mntj->mnti", lg.K, X) + lg.k[:, None]
            gap = mu_pol.mean(1) - u.mean(1)
            lam = lam + alpha * run.st.nu[..., None] * np.einsum("mtij,mtj->mti", lg.inv, gap)
        np.testing.assert_allclose(call["lam_k"], lam, rtol=1e-12, atol=1e-14)
    assert not np.allclose(lam, run.st.lam_k)                 # the duals did move
    np.testing.assert_array_equal(run.out[0].lam_k, run.c_steps[-1]["lam_k"])


def test_badmm_nu_updates_at_the_last_inner_iteration_only(monkeypatch):
    """(80) from the monitor (75) with the newest controller, once, before the last C-step."""
    run = Run(monkeypatch)
    for call in run.c_steps[:-1]:
        np.testing.assert_array_equal(call["nu"], run.st.nu)
    mu_pol = run._mean(run.cfg.inner_iterations, None)
    expected = badmm.update_nu(run.st.nu, lingauss.sample_kl(run.samples.X, mu_pol,
                                                             run.c_steps[-2]["out"][0], VAR))
    np.testing.assert_array_equal(run.c_steps[-1]["nu"], expected)
    np.testing.assert_array_equal(run.out[0].nu, expected)


@pytest.mark.parametrize("i", [0, 1])
def test_badmm_c_steps_use_the_latest_pibar(monkeypatch, i):
    """§7.6: π̄ is refitted after every S-step on μ_θ of the new policy; each C-step uses the
    newest fit."""
    run = Run(monkeypatch, i=i)
    assert len(run.pibar_fits) == 1 + len(run.s_steps)
    for n, mu in enumerate(run.pibar_fits):
        np.testing.assert_array_equal(mu, run._mean(n, None))
    for j, call in enumerate(run.c_steps):
        _same(call["pi_bar"], run.pibars[j + (0 if i == 0 else 1)])
    assert run.out[0].pibar_gmms == f"gmms{len(run.pibar_fits)}"


def test_badmm_step_adaptation_compares_the_predicted_and_the_actual_improvement(monkeypatch):
    """(77)–(78), (48): J₃ is the sampling controllers under this model with the first π̄ and the
    current ν; every C-step gets ε = T · kl_step · step_mult."""
    run = Run(monkeypatch)
    A, B = run.st.prev_costs
    C = badmm.model_cost(run.st.lg, run.dyn, run.cost, run.pibars[0], run.st.nu)
    step_mult = badmm.step_multiplier(run.st.step_mult, A - B, A - C)
    np.testing.assert_array_equal(run.out[0].step_mult, step_mult)
    assert not np.allclose(step_mult, run.st.step_mult)        # the adaptation acted
    for call in run.c_steps:
        np.testing.assert_array_equal(call["eps"], T * run.cfg.kl_step * step_mult)


@pytest.mark.parametrize("i", [0, 1])
def test_badmm_stores_the_old_and_new_controllers_costs_for_the_next_adaptation(monkeypatch, i):
    """§7.4 step 7: J₁ (the sampling controllers) and J₂ (the new ones), both under this model
    with the last π̄ and ν."""
    run = Run(monkeypatch, i=i, prev_costs=i > 0)
    st = run.out[0]
    pb, nu = run.c_steps[-1]["pi_bar"], st.nu
    np.testing.assert_array_equal(st.prev_costs[0],
                                  badmm.model_cost(run.st.lg, run.dyn, run.cost, pb, nu))
    np.testing.assert_array_equal(st.prev_costs[1],
                                  badmm.model_cost(st.lg, run.dyn, run.cost, pb, nu))
    if i == 0:                                                 # no adaptation before i = 1
        np.testing.assert_array_equal(st.step_mult, run.st.step_mult)


# ------------------------------------------------------------------------------------- MDGPS


@pytest.mark.parametrize("i", [0, 1])
def test_mdgps_c_step_is_a_trust_region_around_pibar(monkeypatch, i):
    """(88): centred on π̄ with no ν or λ terms, and the result within 10 % of ε of π̄."""
    run = Run(monkeypatch, algorithm="mdgps", i=i, prev_costs=i > 0)
    (call,) = run.c_steps
    pb = run.pibars[0]
    _same(call["center"], pb)
    assert call["nu"] is None and call["pi_bar"] is None and call["lam_k"] is None
    st, kl, _ = run.out
    eps = T * run.cfg.kl_step * st.step_mult
    np.testing.assert_allclose(_kl_to(run.dyn, st.lg, pb), kl, rtol=1e-8)
    assert np.all(np.abs(kl - eps) < 0.1 * eps)
    np.testing.assert_array_equal(call["eps"], eps)


@pytest.mark.parametrize("i", [0, 1])
def test_mdgps_s_step_regresses_onto_the_new_controllers(monkeypatch, i):
    """§7.14: targets K x + k of the C-step's controllers, their precision, weight 1; at i = 0 a
    first S-step imitates the initial controllers."""
    run = Run(monkeypatch, algorithm="mdgps", i=i, prev_costs=i > 0)
    lgs = ([run.st.lg] if i == 0 else []) + [run.out[0].lg]
    assert len(run.s_steps) == len(lgs)
    for call, lg in zip(run.s_steps, lgs):
        target, prec = sstep.targets(lg, run.samples.X)
        np.testing.assert_array_equal(call["target"], target)
        np.testing.assert_array_equal(call["prec"], prec)
        np.testing.assert_array_equal(call["w"], np.ones((M, N, T)))
    _same(run.out[0].lg, run.c_steps[0]["out"][0])


def test_mdgps_step_adaptation_and_the_costs_it_stores(monkeypatch):
    """(89): actual = J(π̄_prev) − J(π̄_cur) with π̄_cur under this model; the state keeps
    J(π̄) and J(p_new) of this model for the next iteration."""
    run = Run(monkeypatch, algorithm="mdgps")
    A, B = run.st.prev_costs
    pb, st = run.pibars[0], run.out[0]
    C = badmm.model_cost(pb, run.dyn, run.cost)
    step_mult = badmm.step_multiplier(run.st.step_mult, A - B, A - C)
    np.testing.assert_array_equal(st.step_mult, step_mult)
    assert not np.allclose(step_mult, run.st.step_mult)
    np.testing.assert_array_equal(st.prev_costs[0], badmm.model_cost(pb, run.dyn, run.cost))
    np.testing.assert_array_equal(st.prev_costs[1], badmm.model_cost(st.lg, run.dyn, run.cost))
