"""The ``ndgm`` command line.

    ndgm run EXPERIMENT [--param VALUE ...] [--quick] [--out DIR]
    ndgm list [--out DIR]
    ndgm show RUN [--out DIR] [--plot]
    ndgm reproduce [--quick | --full] [--only PATTERN] [--out DIR]
    ndgm sweep EXPERIMENT --grid lr=0.001,0.01 --grid l1=1e-3:1:7:log --seeds 5 [--scheduler tcp://host:port]
    ndgm compare RUN RUN ...
    ndgm audit PATH [--threshold T ...] [--json]

Bad input prints one line, ``ndgm: error: ...``, and exits with code 2. ``show`` and
``compare`` work from the run folders alone: they import no experiment module.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from pathlib import Path

from . import __version__
from .claims import CONTRADICTED, INCONCLUSIVE, ledger_row, not_run, verdict_counts
from .errors import NdgmError
from .report.claims import claims_markdown, claims_table
from .store import DEFAULT_ROOT, RunStore, ensure_writable, write_json


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and no prefix matching of flags
    (``--p`` must not silently mean ``--p1``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse API
        raise NdgmError(message)


def _build_parser(with_experiments: bool = True) -> argparse.ArgumentParser:
    """The parser; ``with_experiments`` adds one ``run`` sub-command per experiment (which
    imports them all, so the commands that only read run folders go without)."""
    p = _Parser(prog="ndgm", description="What gradient methods do on non-differentiable losses: "
                "run the papers' experiments, check their claims, store and show the results.")
    p.add_argument("--version", action="version", version=f"ndgm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run one experiment and store it", description="Run one experiment "
                         "and store it as a folder under --out. 'ndgm run EXPERIMENT --help' lists its parameters.")
    run_sub = run.add_subparsers(dest="experiment", metavar="EXPERIMENT", parser_class=_Parser)
    if with_experiments:
        from .experiments import EXPERIMENTS

        for e in EXPERIMENTS.values():
            ep = run_sub.add_parser(e.name, help=e.title, description=f"{e.title} ({e.source}).")
            for prm in e.all_params():
                if prm.kind == "bool":
                    ep.add_argument(prm.flag, dest=prm.name, default=None, metavar="BOOL",
                                    help=f"{prm.help} (default: {prm.default})")
                else:
                    ep.add_argument(prm.flag, dest=prm.name, default=None, metavar=prm.name.upper(),
                                    help=f"{prm.help} (default: {prm.show(prm.default)}"
                                    + (f"; quick: {prm.show(prm.quick)}" if prm.quick is not None else "") + ")")
            _common_run_flags(ep)

    lst = sub.add_parser("list", help="list experiments and stored runs")
    lst.add_argument("--out", default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")

    show = sub.add_parser("show", help="show a stored run's summary and claim verdicts")
    show.add_argument("run", metavar="RUN", help="run id, unique id prefix, or path to a run folder")
    show.add_argument("--out", default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")
    show.add_argument("--plot", action="store_true", help="rebuild the run's figures from its stored arrays")
    show.add_argument("--json", action="store_true", help="print result.json instead of a table")

    rep = sub.add_parser("reproduce", help="run every experiment and print the claims table",
                         description="Run every experiment (or those --only selects), write the claims ledger "
                         "and report.html. Quick mode is the default; --full runs the paper sizes.")
    mode = rep.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false",
                      help="quick mode, the default: the CPU defaults, minutes")
    mode.add_argument("--full", dest="full", action="store_true",
                      help="paper sizes (needs --data-dir / --weights and a GPU for the deep experiments)")
    rep.set_defaults(full=False)
    rep.add_argument("--only", default="*", metavar="PATTERN", help="glob over experiment names (default: all)")
    rep.add_argument("--out", default="runs/reproduce", help="output directory (default: %(default)s)")
    rep.add_argument("--data-dir", default=None, help="CIFAR-10 python batches, for experiments that take one")
    rep.add_argument("--weights", default=None, help="torchvision VGG16 state dict, for experiments that take one")
    rep.add_argument("--no-progress", action="store_true", help="hide progress bars")
    rep.add_argument("--strict", action="store_true", help="exit 1 when a row that ran is contradicted or "
                     "inconclusive (for CI); without it the exit code is 0 whenever the ledger was written")

    sw = sub.add_parser("sweep", help="run an experiment over a grid of parameters",
                        description="Expand a grid, skip configurations already finished in the run store, run the "
                        "rest in parallel processes (or on a Dask cluster) and write one table of every run's summary.")
    sw.add_argument("experiment", metavar="EXPERIMENT")
    sw.add_argument("--grid", action="append", default=[], metavar="NAME=VALUES",
                    help="values: a,b,c or start:stop:num[:log|lin]; repeat for more parameters")
    sw.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="fixed parameter value")
    sw.add_argument("--seeds", type=int, default=None, help="number of seeds per grid point (seed, seed+1, ...)")
    sw.add_argument("--quick", action="store_true", help="start from the quick defaults")
    sw.add_argument("--out", default="runs/sweeps", help="sweep directory: runs and table (default: %(default)s)")
    sw.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    sw.add_argument("--workers", type=int, default=None, help="local worker processes (default: CPU count)")
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")

    cmp_ = sub.add_parser("compare", help="overlay stored runs of one experiment in one figure")
    cmp_.add_argument("runs", nargs="+", metavar="RUN")
    cmp_.add_argument("--out", default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")
    cmp_.add_argument("--output", default=None, help="figure path (default: compare-EXPERIMENT.png)")

    aud = sub.add_parser("audit", help="exact zeros, small weights and dead channels of a saved model",
                         description="Audit a saved model: a state dict or a checkpoint holding one (torch.save; "
                         "read with weights_only=True) or a .safetensors file. Per tensor and in total: exact zeros, "
                         "the fraction below each threshold, output channels that are entirely zero; parameters and "
                         "buffers apart; the size a compacted model would have.")
    aud.add_argument("path", metavar="PATH", help="a .pt/.pth/.bin/.ckpt file saved with torch.save, or .safetensors")
    aud.add_argument("--threshold", action="append", default=None, metavar="T",
                     help="count |w| < T as small; repeat for more (default: 1e-8, 1e-5, 1e-3)")
    aud.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _common_run_flags(ep: argparse.ArgumentParser) -> None:
    ep.add_argument("--out", default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")
    ep.add_argument("--quick", action="store_true", help="use the quick (CPU, small) defaults")
    ep.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_one(exp, config: dict, store: RunStore, progress: bool):
    from .figures import write_figures

    started = time.time()
    result = exp.run(config, progress=progress)
    path = store.save(result, started=started, write_files=write_figures)
    return result, path


def cmd_run(args) -> int:
    from .experiments import EXPERIMENTS, get_experiment

    if not args.experiment:
        raise NdgmError("which experiment? choose one of " + ", ".join(EXPERIMENTS))
    exp = get_experiment(args.experiment)
    given = {p.name: getattr(args, p.name) for p in exp.all_params() if getattr(args, p.name, None) is not None}
    config = exp.config(quick=args.quick, **given)
    store = RunStore(ensure_writable(Path(args.out)))
    result, path = _run_one(exp, config, store, progress=not args.no_progress)
    print(f"run stored in {path}")
    print(claims_table([ledger_row(exp.name, c) for c in result.claims]))
    return 0


def cmd_list(args) -> int:
    from .experiments import EXPERIMENTS

    print("experiments:")
    for e in EXPERIMENTS.values():
        print(f"  {e.name:<16} {e.title}  [{e.source}]")
    runs = RunStore(args.out).runs(recursive=True)
    print(f"\nruns under {args.out}: {len(runs)}")
    for r in runs:
        claims = r.result.get("claims", [])
        ok = verdict_counts(claims)["reproduced"]
        where = str(r.path.parent.relative_to(args.out)) if r.path.parent != Path(args.out) else "."
        print(f"  {r.run_id:<48} {r.config.get('finished', ''):<20} claims {ok}/{len(claims)} reproduced  [{where}]")
    return 0


def cmd_show(args) -> int:
    store = RunStore(args.out)
    run = store.load(args.run)
    if args.json:
        print(json.dumps(run.result, indent=2))
        return 0
    print(f"run:        {run.run_id}  ({run.path})")
    print(f"experiment: {run.experiment}")
    print("config:     " + ", ".join(f"{k}={v}" for k, v in run.config.get("config", {}).items()))
    v = run.config.get("versions", {})
    print(f"versions:   ndgm {v.get('ndgm')}, torch {v.get('torch')}, numpy {v.get('numpy')}")
    print("summary:")
    for k, val in run.result.get("summary", {}).items():
        print(f"  {k}: {val}")
    print(claims_table([ledger_row(run.experiment, c) for c in run.result.get("claims", [])]))
    if args.plot:
        from .figures import render

        paths = render(run.figures, run.arrays(), run.result.get("summary", {}), run.config.get("config", {}),
                       run.path)
        for p in paths:
            print(f"figure: {p}")
    return 0


def cmd_reproduce(args) -> int:
    from .experiments import EXPERIMENTS, get_experiment
    from .report.html import write_report

    out = ensure_writable(Path(args.out))
    quick = not args.full
    names = [n for n in EXPERIMENTS if fnmatch.fnmatch(n, args.only)]
    if not names:
        raise NdgmError(f"--only {args.only!r} matches no experiment; known: {', '.join(EXPERIMENTS)}")
    store = RunStore(out / "runs")
    ledger, runs = [], []
    extra = {"data_dir": args.data_dir, "weights": args.weights}
    for name in names:
        exp = get_experiment(name)
        missing = _missing_for_full(exp, args) if not quick else []
        if missing:
            print(f"[{name}] not run here: {'; '.join(missing)}", file=sys.stderr, flush=True)
            ledger.append(ledger_row(name, not_run(f"all claims of {name} ({exp.title})", exp.source,
                                                   "not run here: " + "; ".join(missing))))
            continue
        known = {p.name for p in exp.all_params()}
        config = exp.config(quick=quick, **{k: v for k, v in extra.items() if v is not None and k in known})
        print(f"[{name}] running ({'quick' if quick else 'full'}) ...", file=sys.stderr, flush=True)
        t0 = time.time()
        result, path = _run_one(exp, config, store, progress=not args.no_progress)
        print(f"[{name}] done in {time.time() - t0:.1f}s -> {path}", file=sys.stderr, flush=True)
        runs.append(store.load(path))
        wall = round(time.time() - t0, 1)
        for c in result.claims:
            ledger.append(_with_difference(ledger_row(name, c)) | {"run": str(path), "wall_s": wall})
    write_json(out / "claims.json", ledger)
    (out / "claims.md").write_text("# Claims ledger\n\n" + claims_markdown(ledger) + "\n")
    report = write_report(out / "report.html", runs, ledger)
    print(claims_table(ledger))
    counts = verdict_counts(ledger)
    print("\n" + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (of {len(ledger)} claims)")
    print(f"report: {report}; ledger: {out / 'claims.md'}, {out / 'claims.json'}")
    # The tool worked whatever the verdicts are; --strict is for CI that wants every row that ran reproduced.
    undecided = counts[CONTRADICTED] + counts[INCONCLUSIVE]
    return 1 if (args.strict and undecided) else 0


def _missing_for_full(exp, args) -> list[str]:
    """Why ``exp`` cannot run at paper size here (empty when it can)."""
    import torch

    why = []
    if "data_dir" in exp.full_requires and not args.data_dir:
        why.append("the CIFAR-10 python batches (--data-dir)")
    if "weights" in exp.full_requires and not args.weights:
        why.append("the ImageNet-pretrained VGG16 state dict (--weights)")
    if "gpu" in exp.full_requires and not torch.cuda.is_available():
        why.append("a GPU (paper-size VGG training; force the CPU with 'ndgm run %s --data-dir ...')" % exp.name)
    return ["needs " + w for w in why]


def _with_difference(c: dict) -> dict:
    """Add ``difference = measured - expected`` where both are numbers (for 'differs' rows)."""
    e, m = c.get("expected"), c.get("measured")
    if isinstance(e, (int, float)) and isinstance(m, (int, float)) and not isinstance(e, bool) and not isinstance(m, bool):
        return c | {"difference": float(m) - float(e)}
    return c


def _kv(items: list[str], flag: str) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise NdgmError(f"{flag} {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def cmd_sweep(args) -> int:
    from .experiments import get_experiment
    from .sweep import expand, parse_grid, plan_sweep, run_sweep, sweep_table, write_table

    exp = get_experiment(args.experiment)
    grid = parse_grid(args.grid)
    configs = expand(exp.name, grid, seeds=args.seeds, quick=args.quick, fixed=_kv(args.set, "--set"))
    if args.workers is not None and args.workers < 1:
        raise NdgmError(f"--workers must be >= 1, got {args.workers}")
    out = ensure_writable(Path(args.out))
    store = RunStore(out / "runs")
    plan = plan_sweep(exp.name, configs, store)
    print(f"sweep {exp.name}: {len(configs)} configurations, {len(plan.finished)} already finished, "
          f"{len(plan.todo)} to run" + (f" on {args.scheduler}" if args.scheduler else ""), file=sys.stderr, flush=True)
    run_sweep(plan, store, scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress)
    table = sweep_table(exp.name, configs, store)
    csv, pq = write_table(table, out, stem=f"sweep-{exp.name}")
    print(f"{len(table)} runs tabulated in {csv} and {pq}")
    return 0


def cmd_compare(args) -> int:
    from .figures.compare import plot_compare

    store = RunStore(args.out)
    runs = [store.load(r) for r in args.runs]
    kinds = sorted({r.experiment for r in runs})
    if len(kinds) != 1:
        raise NdgmError(f"compare needs runs of one experiment, got {', '.join(kinds)}")
    path = Path(args.output or f"compare-{kinds[0]}.png")
    try:
        plot_compare(runs, path)
    except OSError as e:
        raise NdgmError(f"cannot write {str(path)!r} ({e.strerror or e})") from None
    print(f"figure: {path}")
    return 0


def cmd_audit(args) -> int:
    """``ndgm audit PATH``: `ndgm.analysis.sparsity.sparsity_audit` of a saved model, as a table or JSON."""
    from .analysis.sparsity import THRESHOLDS, sparsity_audit

    report = sparsity_audit(args.path, args.threshold or THRESHOLDS)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    c, t = report.compacted, report.total
    print(f"{args.path}: {t.numel} parameters in {len(report.layers)} tensors, {t.exact_zeros} exactly zero "
          f"({100 * t.exact_zero_fraction:.2f}%); {t.zero_channels} of {t.channels} output channels entirely zero")
    print(report.table())
    print(f"\ncompacted (dead output channels removed, estimated from the tensors' order): {c['parameters']} of "
          f"{c['parameters_before']} parameters, {c['bytes']} of {c['bytes_before']} bytes")
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "show": cmd_show, "reproduce": cmd_reproduce,
            "sweep": cmd_sweep, "compare": cmd_compare, "audit": cmd_audit}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser(with_experiments=argv[:1] == ["run"])
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        return COMMANDS[args.command](args)
    except NdgmError as e:
        print(f"ndgm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ndgm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
