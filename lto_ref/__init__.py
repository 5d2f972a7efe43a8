"""lto_ref: a reference implementation of Li & Malik's Learning to Optimize (paper 1) and
Learning to Optimize Neural Nets (paper 2).

Shared core: ``objectives`` (paper 1's families), ``optimizers`` (update formulas as pure
(init, step) pairs), ``rollout`` (Algorithm 1, meta-loss, tuning), ``autodiff`` and
``closed_form`` (per-problem derivatives), ``metrics``, ``references``, ``io``.
Paper 1's learner: ``features``, ``policy``, ``supervised``; guided policy search in ``gps``.
Paper 2: ``nets``, ``data`` (with ``fetch`` and ``data_cli``), ``nn_features``, ``lstm``,
``lstm_policy``, ``l2l``; its GPS in ``gps.coordinates``, ``gps.coordinatewise``,
``gps.lstm_sstep``, ``gps.nn_trainer``. Beyond the papers: ``analysis``. Speed:
``benchmark``, ``benchmark_paper2``.
"""
__version__ = "0.1.0"
