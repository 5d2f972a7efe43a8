"""lto_ref: a reference implementation of Li & Malik's Learning to Optimize.

Modules: ``objectives`` (objective families), ``optimizers`` (baselines as pure (init, step)
pairs), ``rollout`` (Algorithm 1, meta-loss, tuning), ``metrics`` (margin of victory, win
fraction), ``references`` (scipy line-search references), ``benchmark`` (speed measurements).
"""
__version__ = "0.1.0"
