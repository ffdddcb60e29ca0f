"""A step size that makes GD singular (non-singularity paper Fig. 1; spec stability.md sections 2 and 5).

``L(t) = 0.5 t^4 - 3 t^2 + 8`` for ``|t| <= 2`` and ``t^2`` outside has ``L'' = 2`` on
``|t| > 2``, so ``eta = 1/2`` is exceptional: ``G(t) = 0`` for every ``|t| > 2``, a whole
interval collapses onto the local maximum 0, where GD stays. ``eta = 0.25`` halves ``t``
there and GD falls into the 2-cycle {1, 2}; ``eta = 0.1`` converges to ``+-sqrt(3)``.

Also the saddle-avoidance check of section 5 on ``f = 1/2 sum a_i x_i^2`` with a negative
``a_i``: random starts never reach the saddle; ``eta = 1/a_i`` collapses R^d onto ``{x_i = 0}``.
"""

from __future__ import annotations

import math
import numpy as np
import torch

from ..analysis.gdmap import exceptional_step_sizes, saddle_avoidance, singularity_probe
from ..analysis.stats import binomial_interval
from ..errors import NdgmError
from ..problems import Quartic1D
from ..claims import Claim, exact, holds
from .base import Context, Experiment, Param

SRC = "spec stability.md s.2 (paper Fig. 1)"
SADDLE_A = (2.0, 0.5, -1.0)


class GDMap1D(Experiment):
    name = "gdmap-1d"
    title = "GD map of a C^1 loss: a singular step size collapses |t| > 2 onto the local maximum"
    source = "non-singularity paper Fig. 1; Lee et al. 2016 (saddle avoidance)"
    params = (
        Param("eta_singular", 0.5, "pos", "exceptional step 1/L''(|t|>2) (paper: 0.5)"),
        Param("eta_cycle", 0.25, "pos", "step that falls into the 2-cycle {1, 2} (spec: 0.25)"),
        Param("eta_converge", 0.1, "pos", "step that converges to +-sqrt(3) (spec: 0.1)"),
        Param("starts", 2000, "int", "starts per sign on 2 < |t| <= t_max", quick=400),
        Param("t_max", 6.0, "pos", "largest |t| of the starts"),
        Param("iterations", 200, "int", "GD iterations from every start"),
        Param("probe_samples", 20000, "int", "samples of the singularity probe on (2, 4)", minimum=8, quick=4000),
        Param("saddle_starts", 1000, "int", "random starts of the saddle demo on f = (2 x^2 + 0.5 y^2 - z^2)/2",
              quick=200),
        Param("saddle_eta", 0.1, "pos", "GD step of the saddle demo (< 1/2 = 1/max a_i)"),
    )
    fixed = {"dtype": "float64", "device": "cpu"}
    fixed_reason = "the map facts are exact in float64"
    figures = ("gdmap_1d.png",)
    size_params = ("starts", "probe_samples", "saddle_starts")

    def validate(self, config):
        if config["t_max"] <= 2:
            raise NdgmError(f"--t-max must be > 2 (starts lie on 2 < |t| <= t_max), got {config['t_max']}")

    def memory_bytes(self, config):
        # starts: 2n float64 values, a few copies per step size; the probe and the saddle demo
        # hold (samples, 1) and (starts, 3) arrays and their Jacobians
        return 8.0 * (16 * config["starts"] + 32 * config["probe_samples"] + 64 * config["saddle_starts"])

    def compute(self, config: dict, ctx: Context):
        q = Quartic1D()
        n, T = config["starts"], config["iterations"]
        pos = torch.linspace(2, config["t_max"], n + 1, dtype=torch.float64)[1:]  # open at 2
        t0 = torch.cat([-pos.flip(0), pos])
        etas = {"singular": config["eta_singular"], "cycle": config["eta_cycle"], "converge": config["eta_converge"]}
        finals, after_one, tails, first_bad = {}, {}, {}, {}
        for key, eta in etas.items():
            # Keep only the iterates that are used: the first and the last two (T >= 1).
            t = t0.clone()
            first_bad[key] = -1 if bool(torch.isfinite(t).all()) else 0
            for i in range(T):
                prev, t = t, q.gd_map(t, eta)
                if i == 0:
                    after_one[key] = t
                if first_bad[key] < 0 and not bool(torch.isfinite(t).all()):
                    first_bad[key] = i + 1
            finals[key] = t
            tails[key] = torch.stack([prev, t])  # last two iterates (a 2-cycle shows both points)

        sqrt3 = math.sqrt(3)
        sing = etas["singular"]
        s = {
            "starts": int(t0.numel()),
            "singular_first_step_max_abs": float(after_one["singular"].abs().max()),
            "singular_final_max_abs": float(finals["singular"].abs().max()),
            # Starts with t < -2 fall into the mirror cycle {-1, -2}: compare |t|.
            "cycle_tail_points": sorted(set(np.round(tails["cycle"].abs().numpy().ravel(), 12).tolist())),
            "cycle_tail_max_error": float(torch.minimum((tails["cycle"].abs() - 1).abs(),
                                                        (tails["cycle"].abs() - 2).abs()).max()),
            "cycle_tail_alternates": bool(((tails["cycle"][0] - tails["cycle"][1]).abs() > 0.5).all()),
            "converge_max_error": float((finals["converge"] - torch.sign(t0) * sqrt3).abs().max()),
            # Divergence is an outcome: starts whose iterate overflowed to inf/NaN (|t| near 1e308,
            # where L'(t) = 2t is inf), per step size, and the first iteration any did (-1: none).
            "diverged_starts": {k: int((~torch.isfinite(v)).sum()) for k, v in finals.items()},
            "diverged_at": {k: v for k, v in first_bad.items()},
        }
        probe_x = torch.linspace(2.05, 6.0, 40, dtype=torch.float64)[:, None]
        s["exceptional_steps_outside"] = exceptional_step_sizes(q, probe_x).tolist()
        s["exceptional_steps_inside"] = exceptional_step_sizes(
            q, torch.linspace(0.1, 1.9, 40, dtype=torch.float64)[:, None]).tolist()
        for key in ("singular", "cycle"):
            s[f"probe_{key}"] = singularity_probe(q, etas[key], [2.0], [4.0], config["probe_samples"],
                                                  seed=config["seed"]).as_dict()
        s["saddle"] = saddle_avoidance(SADDLE_A, config["saddle_eta"], config["saddle_starts"], T, seed=config["seed"])

        # t_max * linspace(-1, 1): linspace(-t_max, t_max) overflows its step for t_max near 1e308
        grid = config["t_max"] * np.linspace(-1.0, 1.0, 2401)
        gt = torch.as_tensor(grid)
        arrays = {"grid": grid, "loss": q.value(gt[:, None]).numpy()}
        for key, eta in etas.items():
            arrays[f"map_{key}"] = q.gd_map(gt, eta).numpy()
            # Cobweb orbits from three starts, 12 steps each.
            w = torch.tensor([-5.0, 3.0, 1.2], dtype=torch.float64)
            orbit = [w]
            for _ in range(12):
                w = q.gd_map(w, eta)
                orbit.append(w)
            arrays[f"cobweb_{key}"] = torch.stack(orbit).numpy()
        arrays["etas"] = np.array([etas["singular"], etas["cycle"], etas["converge"]])
        return arrays, s

    def claims(self, s: dict, config: dict) -> list[Claim]:
        eta_s, eta_c, eta_v = config["eta_singular"], config["eta_cycle"], config["eta_converge"]
        n = s["starts"]
        cyc = s["cycle_tail_points"]
        ps, pc = s["probe_singular"], s["probe_cycle"]
        sad = s["saddle"]
        cell_s, cell_c = ps["cell"] / ps["region_measure"], pc["cell"] / pc["region_measure"]
        ci = binomial_interval(sad["converged_to_saddle"], sad["starts"])
        return [
            exact(f"eta={eta_s}: G(t) = 0 exactly for every start with |t| > 2", SRC, 0.0,
                  s["singular_first_step_max_abs"], detail=f"max |G(t)| over {n} starts"),
            exact(f"eta={eta_s}: GD then stays on the local maximum 0", SRC, 0.0,
                  s["singular_final_max_abs"], detail=f"max |t_{config['iterations']}|"),
            holds(f"eta={eta_c}: GD falls into the 2-cycle {{1, 2}} ({{-1, -2}} from t0 < -2)", SRC, [1.0, 2.0], cyc,
                  bool(s["cycle_tail_max_error"] <= 1e-12 and s["cycle_tail_alternates"]),
                  "exact: each of the last two |iterates| of every start within 1e-12 of 1 or 2, and the two differ by "
                  "> 0.5 (alternate)",
                  f"|last two iterates| of {n} starts; max distance to {{1, 2}} {s['cycle_tail_max_error']:.3g}"),
            holds(f"eta={eta_v}: GD converges to sign(t0) sqrt(3)", SRC, "<= 1e-12",
                  s["converge_max_error"], s["converge_max_error"] <= 1e-12,
                  "max over starts of |t_T - sign(t0) sqrt 3| <= 1e-12", kind="bound"),
            exact("exceptional step sizes where L'' is constant on a region: 1/2 on |t| > 2, none on |t| < 2",
                  "spec stability.md s.1-2", [[0.5], []],
                  [s["exceptional_steps_outside"], s["exceptional_steps_inside"]]),
            holds(f"singularity probe on (2, 4): eta={eta_s} collapses the region, eta={eta_c} does not",
                  "spec stability.md s.1", "singular / not; image ratio 0 / 1/2 (to the probe's grid)",
                  f"{ps['singular']} / {pc['singular']}; ratio {ps['ratio']:.3g} / {pc['ratio']:.3g}",
                  bool(ps["singular"] and not pc["singular"] and ps["ratio"] <= cell_s
                       and abs(pc["ratio"] - 0.5) <= 2 * cell_c),
                  f"exact: probe says singular at eta={eta_s} and not at eta={eta_c}; image/region measure <= one grid "
                  f"cell ({cell_s:.2g}) at eta={eta_s} and within two cells ({2 * cell_c:.2g}) of 1/2 at eta={eta_c}",
                  "covering-count measure of the image / of the region; |det D G| = 0 on all samples at eta=0.5"),
            holds("saddle avoidance: no random start converges to the strict saddle", "spec stability.md s.5",
                  0, sad["converged_to_saddle"], sad["converged_to_saddle"] == 0,
                  "exact: number of starts ending within 1e-8 of the saddle == 0 (the theorem: probability 0, so "
                  "one such start contradicts it)",
                  f"{sad['starts']} starts, {sad['iterations']} steps, min final norm {sad['min_final_norm']:.3g}; "
                  f"95% upper bound on the probability {ci.high:.2g} (Clopper-Pearson)"),
            holds("saddle demo: eta = 1/a_i sends every start onto {x_i = 0} (det = 0)", "spec stability.md s.5",
                  "max |x_i| = 0, det = 0", f"max |x_i| {sad['max_abs_collapsed']}, det {sad['det_at_singular']}",
                  all(v == 0 for v in sad["max_abs_collapsed"]) and all(v == 0 for v in sad["det_at_singular"]),
                  "exact: after one step every start has x_i == 0.0 and det(I - eta A) == 0.0, at each eta = 1/a_i",
                  f"singular steps {sad['singular_steps']}"),
        ]



EXPERIMENT = GDMap1D()
