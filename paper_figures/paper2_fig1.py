"""Figure 1 of paper 2 (the blog's results figure): 48-48-C nets, minibatch 64 (docs/method.md §12–§13).

The GPS-trained LSTM optimizer, the seven baselines and L2LBGDBGD, all meta-trained or tuned on
MNIST, train 48-48-C nets (minibatch 64, 400 iterations) on TFD, CIFAR-10 and CIFAR-100 or their
substitutes. See ``_learned``.
"""
from paper_figures import _learned

FULL, QUICK, trainings, compute, plot, plotted = _learned.make(
    1, 48, 48, 64, 400, "Figure 1 of paper 2 (the blog's results figure): 48-48-C nets, minibatch 64")
