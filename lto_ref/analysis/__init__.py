"""What is not in the papers: analysis of trained learned optimizers and a correction of them.

- ``stability``: near a minimiser a reflection-odd learned optimizer is a linear multi-step
  method; its companion matrix's spectral radius decides whether it converges there.
- ``stabilise``: the rest-stability projection, the smallest change of a trained policy that
  makes it stable at rest on the training functions' curvatures (docs/method.md §10).

Neither is used by ``gps.train``; ``paper_figures`` applies the projection explicitly.
"""
