"""Figure 3 of paper 1: two-layer neural net classifier (docs/method.md §9).

Panel (a): mean margin of victory of GD, momentum, CG, L-BFGS and the GPS-learned optimizer over
the held-out test functions; (b), (c): the objective on two test functions. See ``_paper1``.
"""
import dataclasses

from lto_ref.gps import dynamics
from paper_figures import _paper1

# the controllers' state keeps 1 lag (dX = 49 instead of 149 for h = 5); each training
# function's dynamics fit has a prior of its own, and the initial controllers come from the
# released grid, as in the released code; GPS is the mirror-descent variant sampling from the
# policy (the controllers stay near what the policy can follow), and the policy is the
# iteration's with the lowest mean meta-loss over the test horizon (100 steps) on the training
# functions, the score that tunes the baselines (all chosen on validation functions:
# docs/deviations.md 20, 57, 58, 59)
_PER_CONDITION = dataclasses.replace(
    dynamics.Config(), prior=dataclasses.replace(dynamics.Config().prior, pooled=False))
FULL, QUICK, trainings, compute, plot, plotted = _paper1.make(
    "two_layer_net", 80, "Figure 3 of paper 1: two-layer neural net classifier", h=1,
    dynamics_fit=_PER_CONDITION, init_grid="released", algorithm="mdgps", sample_on_policy=True,
    select_steps=100)
