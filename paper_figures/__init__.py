"""The papers' figures, regenerated: ``python -m paper_figures`` (see ``__main__``).

Paper 1's Figures 1–3 (``fig1_logistic``, ``fig2_robust``, ``fig3_neural_net``) and the blog's
two figures (``sl_vs_rl``, ``trajectories_2d``), paper 2's baselines (``paper2_baselines``) and
Figures 1–5 (``paper2_fig1`` … ``paper2_fig5``), each a module with ``FULL`` and ``QUICK``
configurations, ``trainings``, ``compute``, ``plot`` and ``plotted``.
"""
FIGURES = ("fig1_logistic", "fig2_robust", "fig3_neural_net", "sl_vs_rl", "trajectories_2d",
           "paper2_baselines", "paper2_fig1", "paper2_fig2", "paper2_fig3", "paper2_fig4",
           "paper2_fig5")
