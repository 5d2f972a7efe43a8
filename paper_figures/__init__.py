"""The papers' figures, regenerated: ``python -m paper_figures`` (see ``__main__``).

Paper 1's Figures 1–3 (``fig1_logistic``, ``fig2_robust``, ``fig3_neural_net``) and the blog's
two figures (``sl_vs_rl``, ``trajectories_2d``), paper 2's baselines (``paper2_baselines``) and
Figures 1–5 (``paper2_fig1`` … ``paper2_fig5``), each a module with ``FULL`` and ``QUICK``
configurations, ``trainings``, ``compute``, ``plot`` and ``plotted``.
"""
DESCRIPTIONS = {
    "fig1_logistic": "paper 1, Figure 1: logistic regression",
    "fig2_robust": "paper 1, Figure 2: robust linear regression",
    "fig3_neural_net": "paper 1, Figure 3: two-layer neural net classifier",
    "sl_vs_rl": "the blog: supervised meta-training against GPS",
    "trajectories_2d": "the blog: 2-parameter logistic regression trajectories",
    "paper2_baselines": "paper 2: seven baselines and L2LBGDBGD tuned on MNIST (needs data)",
    "paper2_fig1": "paper 2, Figure 1: 48-48-C nets, minibatch 64 (needs data)",
    "paper2_fig2": "paper 2, Figure 2: 100-200-C nets, minibatch 64 (needs data)",
    "paper2_fig3": "paper 2, Figure 3: 48-48-C nets, minibatch 10 (needs data)",
    "paper2_fig4": "paper 2, Figure 4: 100-200-C nets, minibatch 10 (needs data)",
    "paper2_fig5": "paper 2, Figure 5: 100-200-C nets, minibatch 64, 800 steps (needs data)",
}
FIGURES = tuple(DESCRIPTIONS)
