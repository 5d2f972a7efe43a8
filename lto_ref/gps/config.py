"""Settings of guided policy search: one frozen dataclass with the released code's defaults.

Defaults follow the authors' released code where the papers are silent (docs/method.md §7);
every field marked "deviation" is a row of docs/deviations.md. ``config_record`` is the part of a
configuration a result depends on (what identifies a checkpoint or a cached policy).
"""
import dataclasses

from lto_ref import policy
from lto_ref.gps import dynamics, gmm

__all__ = ["Config", "config_record"]


@dataclasses.dataclass(frozen=True)
class Config:
    """GPS settings (docs/method.md §7); ``dataclasses.replace`` makes variants."""
    algorithm: str = "badmm"         # or "mdgps" (Montgomery & Levine 2016)
    iterations: int = 10
    inner_iterations: int = 4
    samples: int = 20                # N per condition
    T: int = 40
    H: int = 25                      # lags in the policy's observation
    h: int = 5                       # lags in the controllers' state (deviation; 25 = released)
    kl_step: float = 0.2
    init_eta: float = 1.0
    nu0: float = 0.01
    dual_rate: float = 0.2
    init_var: float = 0.01
    sstep_steps: int = 5000          # Adam steps per S-step (deviation; 20,000 = released)
    sstep_batch: int = 25
    sstep_lr: float = 1e-4
    hidden: int = 50
    activation: str = "softplus"
    symmetric: bool = True           # reflection-odd policy μ(R·o) = −μ(o) (deviation)
    # blocks of conditions per map_fn call (C-step, π̄ fit): splits the work, never the result
    chunks: int = dataclasses.field(default=2, metadata={"identity": False})
    dynamics_fit: dynamics.Config = dynamics.Config()
    policy_prior: gmm.Config = gmm.Config(max_clusters=20)
    # --- reproducing the released code: its choices where this project's defaults differ ---
    init_form: str = "recursive"     # initial controllers; "truncated" = released code's form
    init_offset: str = "zero"        # "x0": the released code's k_t = K x_0 offset
    init_grid: str = "wide"          # the released (γ, μ) grid plus the baselines' (24) (deviation)
    badmm_target: str = "code"       # S-step target −ν G λ (released) or "derivation" −G λ / ν
    sample_on_policy: bool = False   # MDGPS only: sample from π_θ after iteration 0
    # 0: the last iteration's policy (papers); s > 0: the iteration whose policy has the lowest
    # mean meta-loss over s steps on the training functions, among those with no diverged (92)
    # run (``iteration.selection_score``)
    select_steps: int = 0            # (deviation when > 0)

    def __post_init__(self):
        if self.algorithm not in ("badmm", "mdgps"):
            raise ValueError(f"algorithm must be 'badmm' or 'mdgps', got {self.algorithm!r}")
        for name in ("iterations", "inner_iterations", "samples", "T", "H", "h", "sstep_steps",
                     "sstep_batch", "hidden", "chunks"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("kl_step", "init_eta", "nu0", "init_var", "sstep_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name, allowed in (("activation", policy.ACTIVATIONS),
                              ("init_form", ("recursive", "truncated")),
                              ("init_offset", ("zero", "x0")),
                              ("init_grid", ("released", "wide")),
                              ("badmm_target", ("code", "derivation"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.select_steps, int) or self.select_steps < 0:
            raise ValueError(f"select_steps must be an integer >= 0, got {self.select_steps!r}")
        if self.h > self.H:
            raise ValueError(f"h must be <= H = {self.H}, got {self.h}")
        if self.sample_on_policy and self.algorithm != "mdgps":
            raise ValueError("sample_on_policy=True needs algorithm='mdgps' (BADMM samples from "
                             "the controllers)")


def config_record(cfg):
    """The settings a result depends on: a (nested) dataclass configuration as a dict, without
    the fields marked ``metadata={"identity": False}`` (such as ``Config.chunks``)."""
    if not dataclasses.is_dataclass(cfg):
        return cfg
    return {f.name: config_record(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if f.metadata.get("identity", True)}
