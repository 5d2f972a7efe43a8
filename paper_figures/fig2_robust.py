"""Figure 2 of paper 1: robust linear regression (docs/method.md §9).

Panel (a): mean margin of victory of GD, momentum, CG, L-BFGS and the GPS-learned optimizer over
the held-out test functions; (b), (c): the objective on two test functions. See ``_paper1``.
"""
from paper_figures import _paper1

FULL, QUICK, trainings, compute, plot, plotted = _paper1.make(
    "robust_linear_regression", 120, "Figure 2 of paper 1: robust linear regression")
