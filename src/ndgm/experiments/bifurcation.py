"""Period-doubling of GD on the two-point ReLU toy (paper Fig. 3 left; spec stability.md s.4).

On the diagonal ``t1 = t2 = t`` GD is ``t -> t + 2 c eta t (1 - t^2)``. The minimum ``(1, 1)`` is
(normally) stable for ``eta < 1 / 3.53 = 0.28329``; a period-2 orbit is stable up to
``eta = 0.35016``; at ``eta = 0.36`` the attractor has period 4; from about 0.37 it is aperiodic.
The diagram iterates the 2-D map for all step sizes at once (one row per ``eta``).
"""

from __future__ import annotations

import numpy as np

from ..analysis.periodic import attractors, is_stable, orbit_multipliers, periodic_orbits, stability_threshold
from ..errors import NdgmError
from ..problems import PAPER_SCALE, TwoPointReLU
from ..claims import Claim, exact, holds, not_run
from .base import Context, Experiment, Param

SRC = "spec stability.md s.4 (paper Fig. 3 left)"
PERIOD4 = [0.62708, 0.78112, 1.11061, 1.1681]


class Bifurcation(Experiment):
    name = "bifurcation"
    title = "Two-point ReLU toy: period doubling of GD on the diagonal t1 = t2"
    source = "non-singularity paper Fig. 3 (left), App. C"
    params = (
        Param("eta_min", 0.2, "pos", "smallest step size of the diagram"),
        Param("eta_max", 0.4, "pos", "largest step size of the diagram"),
        Param("n_eta", 1200, "int", "step sizes in the diagram (one batch row each)", minimum=2, quick=400),
        Param("transient", 6000, "int", "iterations discarded before recording", quick=3000),
        Param("record", 256, "int", "iterations recorded per step size", minimum=2, quick=128),
        Param("max_period", 64, "int", "longest period detected (longer or none: aperiodic)", minimum=1, quick=32),
        Param("start", 1.1, "pos", "start (t, t) on the diagonal"),
        Param("period", 4, "int", "period k of the orbits found as roots of g^k(t) - t at --orbit-eta (paper: 4)"),
        Param("orbit_eta", 0.36, "pos", "step size of the period-k orbit check (paper: 0.36)"),
        Param("aperiodic_eta", 0.37, "pos", "step size where the attractor should be aperiodic (paper: ~0.37)"),
        Param("scale", PAPER_SCALE, "pos", "c in L = c (1 - t1 t2)^2 (model: 1.765; paper prints 3.53)"),
    )
    fixed = {"dtype": "float64", "device": "cpu"}
    fixed_reason = "long iterations of a 2-D map, float64 on the CPU"
    figures = ("bifurcation.png",)

    def validate(self, config):
        if config["eta_min"] >= config["eta_max"]:
            raise NdgmError(f"--eta-min must be < --eta-max, got {config['eta_min']} >= {config['eta_max']}")

    def compute(self, config: dict, ctx: Context):
        toy = TwoPointReLU(config["scale"])
        etas = np.linspace(config["eta_min"], config["eta_max"], config["n_eta"])
        extra = np.array([config["orbit_eta"], config["aperiodic_eta"]])
        A = attractors(toy, np.concatenate([etas, extra]), start=(config["start"], config["start"]),
                       transient=config["transient"], record=config["record"], max_period=config["max_period"])
        n = len(etas)
        c2 = 2 * config["scale"]
        s: dict = {}
        s["threshold_fixed"] = stability_threshold(toy, 1, 0.5 / c2, 1.1 / c2)
        try:
            s["threshold_period2"] = stability_threshold(toy, 2, 1.0001 / c2, 1.3 / c2)
        except NdgmError:
            s["threshold_period2"] = None
        k, eta_k = config["period"], config["orbit_eta"]
        orbits = periodic_orbits(toy, eta_k, k)
        info = []
        for o in orbits:
            m = orbit_multipliers(toy, o, eta_k)
            info.append({"points": o.tolist(), "multipliers_abs": np.abs(m).tolist(), "stable": is_stable(m)})
        s["orbits"] = info
        s["orbit_attractor_period"] = int(A.period[n])
        s["orbit_attractor_points"] = A.points(n).tolist()
        s["aperiodic_attractor_period"] = int(A.period[n + 1])
        periods = A.period[:n]
        s["period_counts"] = {str(p): int((periods == p).sum()) for p in np.unique(periods)}
        arrays = {"eta": etas, "tail_t": A.tail[:n, :, 0], "period": periods}
        return arrays, s

    def claims(self, s: dict, config: dict) -> list[Claim]:
        default_scale = self.at_defaults(config, "scale")
        why = "spec numbers hold for scale 1.765 only"
        out = []
        th1, th2 = s["threshold_fixed"], s["threshold_period2"]
        claim = "the fixed point (1, 1) is stable for eta < 1/3.53"
        out.append(exact(claim, SRC, 0.28329, round(th1, 6), tol=1e-4,
                         detail="non-unit multiplier of D G at (1,1) reaches -1; tangent multiplier 1 excluded")
                   if default_scale else not_run(claim, SRC, why, 0.28329))
        claim = "a period-2 orbit is stable up to"
        out.append(holds(claim, SRC, 0.35016, None if th2 is None else round(th2, 6),
                         th2 is not None and abs(th2 - 0.35016) <= 1e-4, "exact: |measured - 0.35016| <= 0.0001",
                         "both eigenvalues of the 2-D Jacobian of G^2 below 1 in modulus")
                   if default_scale else not_run(claim, SRC, why, 0.35016))
        k, eta_k = config["period"], config["orbit_eta"]
        stable = [o for o in s["orbits"] if o["stable"]]
        att = s["orbit_attractor_points"]
        agree = (len(stable) == 1 and s["orbit_attractor_period"] == k
                 and np.allclose(sorted(stable[0]["points"]), sorted(att), rtol=0.0, atol=1e-6))
        out.append(holds(f"the stable period-{k} orbit at eta={eta_k} (roots of g^{k}(t) - t) is the attractor "
                         "found by long iteration", "spec stability.md s.4",
                         "one stable orbit = attractor",
                         f"{len(s['orbits'])} orbit(s), {len(stable)} stable; attractor period "
                         f"{s['orbit_attractor_period']}", bool(agree),
                         f"exact: exactly one stable period-{k} orbit, the attractor has period {k}, and their sorted "
                         "points agree within 1e-6"))
        is_paper = self.at_defaults(config, "scale", "period", "orbit_eta")
        pts = sorted(att)
        claim = "at eta = 0.36 the attractor has period 4"
        out.append(holds(claim, SRC, PERIOD4, [round(v, 5) for v in pts],
                         s["orbit_attractor_period"] == 4 and len(pts) == 4
                         and all(abs(a - b) <= 1e-4 for a, b in zip(pts, PERIOD4)),
                         "exact: period 4 and every sorted point within 1e-4 of the spec's")
                   if is_paper else not_run(claim, SRC, "checked only with --period 4 --orbit-eta 0.36 and scale 1.765",
                                            PERIOD4))
        p = s["aperiodic_attractor_period"]
        claim = f"at eta = {config['aperiodic_eta']} the attractor is aperiodic"
        out.append(holds(claim, SRC, f"no period <= {config['max_period']}", "aperiodic" if p == 0 else f"period {p}",
                         p == 0, f"exact: no period p <= {config['max_period']} with max_k |theta_(k+p) - theta_k| < 1e-9 "
                         f"over the {config['record']} recorded iterates (attractors)")
                   if default_scale else not_run(claim, SRC, why, f"no period <= {config['max_period']}"))
        return out



EXPERIMENT = Bifurcation()
