"""Figure 1 of paper 1: logistic regression (SPEC §8.4).

Panel (a): mean margin of victory of GD, momentum, CG, L-BFGS and the GPS-learned optimizer over
the held-out test functions; (b), (c): the objective on two test functions. See ``_paper1``.
"""
import dataclasses

from paper_figures import _paper1

# GPS's policy projected onto rest-stable ones (gps.Config(stabilise=True), README deviation 27);
# not in --quick: a 3-iteration policy is far from rest-stable and the projection fails slowly
FULL, QUICK, trainings, compute, plot, plotted = _paper1.make(
    "logistic_regression", 90, "Figure 1 of paper 1: logistic regression", stabilise=True)
QUICK = dataclasses.replace(QUICK, gps=dataclasses.replace(QUICK.gps, stabilise=False))
