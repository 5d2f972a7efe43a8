"""Figure 5 of paper 2: 100-200-C nets, minibatch 64, 800 iterations (docs/method.md §12–§13).

The GPS-trained LSTM optimizer, the seven baselines and L2LBGDBGD, all meta-trained or tuned on
MNIST, train 100-200-C nets (minibatch 64, 800 iterations) on TFD, CIFAR-10 and CIFAR-100 or their
substitutes. See ``_learned``.
"""
from paper_figures import _learned

FULL, QUICK, trainings, compute, plot, plotted = _learned.make(
    5, 100, 200, 64, 800, "Figure 5 of paper 2: 100-200-C nets, minibatch 64, 800 iterations")
