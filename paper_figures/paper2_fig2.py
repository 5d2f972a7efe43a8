"""Figure 2 of paper 2: 100-200-C nets, minibatch 64 (docs/method.md §12–§13).

The GPS-trained LSTM optimizer, the seven baselines and L2LBGDBGD, all meta-trained or tuned on
MNIST, train 100-200-C nets (minibatch 64, 400 iterations) on TFD, CIFAR-10 and CIFAR-100 or their
substitutes. Its runs are the first 400 steps of Figure 5's 800-step runs (the same nets,
minibatch streams and x⁽⁰⁾), so whichever of the two figures runs first serves both. See
``_learned``.
"""
from paper_figures import _learned

FULL, QUICK, trainings, compute, plot, plotted = _learned.make(
    2, 100, 200, 64, 400, "Figure 2 of paper 2: 100-200-C nets, minibatch 64", run_steps=800)
