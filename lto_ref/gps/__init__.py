"""Guided policy search (GPS): the reinforcement-learning meta-trainer of Learning to Optimize.

``from lto_ref import gps; policy, log = gps.train(family, problems, x0, gps.Config())``.

The pipeline, in the order one BADMM iteration runs it (docs/method.md §7), one module each:

1. ``lingauss``    linear-Gaussian controllers p(u|x) = N(Kx + k, G), their Gaussian quadratic
                   form and KL divergences
2. ``environment`` the MDP as GPS sees it: the controllers' state inside the features, the exact
                   shift structure of the transition, batched sampling
3. ``warmstart``   initial controllers: heavy-ball momentum tuned per training function
4. ``gmm``         EM for Gaussian mixtures and the Normal-inverse-Wishart prior they supply
5. ``dynamics``    per-step linear-Gaussian dynamics fits under that prior
6. ``pibar``       the policy's linearisation π̄ around the samples
7. ``cost``        local quadratic cost models and the Laplace expected cost
8. ``lqr``         the C-step's LQR: combined BADMM cost, backward and forward passes
9. ``eta_search``  the dual search for η that meets the KL trust region
10. ``sstep``      the S-step: weighted regression of the policy onto the controllers
11. ``badmm``      dual updates (λ, ν) and step-size adaptation
12. ``iteration``  one BADMM (or MDGPS) iteration over all conditions
13. ``trainer``    ``train``: iterations, checkpoints, resume; ``config``: ``Config``

Paper 2's coordinate-wise optimizer uses the same machinery in block-diagonal form:
``coordinates`` makes each coordinate group one condition, its coordinates extra samples,
``lstm_sstep`` regresses the LSTM policy onto the controllers on windows of their samples, and
``coordinatewise`` runs one iteration (``iteration.badmm_inner`` with the LSTM's operations)
and ``nn_trainer.train`` the whole meta-training.
"""
from lto_ref.gps import (badmm, coordinates, cost, dynamics, environment, eta_search, gmm,  # noqa
                         iteration, lingauss, lqr, lstm_sstep, pibar, sstep, warmstart)
from lto_ref.gps import coordinatewise, nn_trainer  # noqa  (after iteration and lstm_sstep)
from lto_ref.gps.config import Config, config_record
from lto_ref.gps.iteration import LogRow
from lto_ref.gps.trainer import GPSLog, train

__all__ = ["Config", "config_record", "train", "GPSLog", "LogRow"]
