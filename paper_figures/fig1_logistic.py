"""Figure 1 of paper 1: logistic regression (docs/method.md §9).

Panel (a): mean margin of victory of GD, momentum, CG, L-BFGS and the GPS-learned optimizer over
the held-out test functions; (b), (c): the objective on two test functions. See ``_paper1``.
The full figure's policy is GPS's after the rest-stability projection (docs/deviations.md).
"""
from paper_figures import _paper1

FULL, QUICK, trainings, compute, plot, plotted = _paper1.make(
    "logistic_regression", 90, "Figure 1 of paper 1: logistic regression", stabilise=True)
