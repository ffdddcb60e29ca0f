"""The ``ndgm`` command line.

    ndgm run EXPERIMENT [--param VALUE ...] [--quick] [--out DIR]
    ndgm list [--out DIR]
    ndgm show RUN [--out DIR] [--plot]
    ndgm reproduce [--quick | --full] [--only PATTERN] [--out DIR]
    ndgm sweep EXPERIMENT --grid lr=0.001,0.01 --grid l1=1e-3:1:7:log --seeds 5 [--scheduler tcp://host:port]
    ndgm compare RUN RUN ...
    ndgm audit PATH [--threshold T ...] [--json]
    ndgm store check [--repair] [--out DIR]

Bad input prints one line, ``ndgm: error: ...``, and exits with code 2, before anything
is written (a folder a failed command created is removed again if it stayed empty).
Ctrl-C prints ``ndgm: interrupted`` and exits with 130; an unexpected exception (a bug) is
one line ``ndgm: internal error: ...`` and exit code 1 (``NDGM_TRACEBACK=1`` shows the
traceback). ``show``, ``compare`` and ``store`` work from the run folders alone: they
import no experiment module.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import __version__
from .claims import CONTRADICTED, INCONCLUSIVE, ledger_row, not_run, verdict_counts
from .errors import NdgmError
from .report.claims import claims_markdown, claims_table
from .store import _CREATED_DIRS, DEFAULT_ROOT, WORKDIR, RunStore, discard_created_dirs, ensure_writable, write_json


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and no prefix matching of flags
    (``--p`` must not silently mean ``--p1``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse API
        raise NdgmError(" ".join(message.split()))


def _folder(text: str) -> str:
    """argparse type of ``--out``: a folder name, not empty (``''`` would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got ''")
    return text


def _count(text: str) -> int:
    """argparse type of counts (``--seeds``, ``--workers``, ``--threads``): an integer >= 1."""
    from .errors import check_int

    try:
        return check_int("", text, minimum=1, maximum=2**31 - 1)
    except NdgmError:
        raise argparse.ArgumentTypeError(f"must be an integer between 1 and {2**31 - 1}, got {text!r}") from None


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

    lst = sub.add_parser("list", help="list experiments and stored runs (damaged ones with the reason)")
    lst.add_argument("--out", type=_folder, default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")

    show = sub.add_parser("show", help="show a stored run's summary and claim verdicts")
    show.add_argument("run", metavar="RUN", help="run id, unique id prefix, or path to a run folder")
    show.add_argument("--out", type=_folder, default=str(DEFAULT_ROOT),
                      help="run store directory (default: %(default)s)")
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
    rep.add_argument("--out", type=_folder, default="runs/reproduce", help="output directory (default: %(default)s)")
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
    sw.add_argument("--seeds", type=_count, default=None,
                    help="number of seeds per grid point (seed, seed+1, ...; the base seed from --set seed=N)")
    sw.add_argument("--quick", action="store_true", help="start from the quick defaults")
    sw.add_argument("--out", type=_folder, default="runs/sweeps",
                    help="sweep directory: runs and table (default: %(default)s)")
    sw.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    sw.add_argument("--workers", type=_count, default=None, help="local worker processes (default: CPU count)")
    sw.add_argument("--threads", type=_count, default=1,
                    help="torch and BLAS threads of every worker, local or Dask, where the experiment sets none "
                    "(default: %(default)s); the results' bits depend on it, so a sweep fixes it")
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")

    cmp_ = sub.add_parser("compare", help="overlay stored runs of one experiment in one figure")
    cmp_.add_argument("runs", nargs="+", metavar="RUN")
    cmp_.add_argument("--out", type=_folder, default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")
    cmp_.add_argument("--output", type=_folder, default=None, help="figure path (default: compare-EXPERIMENT.png)")

    st = sub.add_parser("store", help="check the run store: damaged and half-written run folders",
                        description="Maintenance of a run store.")
    st_sub = st.add_subparsers(dest="store_command", metavar="ACTION", parser_class=_Parser)
    chk = st_sub.add_parser("check", help="find damaged or half-written runs; --repair moves them aside",
                            description="Read every run folder under --out (and three levels below): report "
                            "damaged ones (a file missing, truncated or unreadable) and half-written ones (left by a "
                            "killed writer). --repair moves them into .damaged/ beside them; nothing is deleted and a "
                            "sound run is never moved. Exit code 0 when the store is sound (or repaired), 1 otherwise.")
    chk.add_argument("--out", type=_folder, default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")
    chk.add_argument("--repair", action="store_true", help="move damaged and half-written folders into .damaged/")

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
    ep.add_argument("--out", type=_folder, default=str(DEFAULT_ROOT), help="run store directory (default: %(default)s)")
    ep.add_argument("--quick", action="store_true", help="use the quick (CPU, small) defaults")
    ep.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_one(exp, config: dict, store: RunStore, progress: bool):
    from .figures import write_figures

    started = time.time()
    # Scratch files (checkpoints) stay under the store: never in the current directory.
    result = exp.run(config, progress=progress, workdir=store.root / WORKDIR)
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
    print(claims_table([ledger_row(exp.name, c) for c in result.claims],
                       full=f"the full table: 'ndgm show {path.name} --out {args.out} --json'"))
    return 0


def cmd_list(args) -> int:
    from .experiments import EXPERIMENTS

    print("experiments:")
    for e in EXPERIMENTS.values():
        print(f"  {e.name:<16} {e.title}  [{e.source}]")
    runs, damaged = RunStore(args.out).scan(recursive=True)
    root = Path(args.out)

    def where(p: Path) -> str:
        return str(p.parent.relative_to(root)) if p.parent != root else "."

    print(f"\nruns under {args.out}: {len(runs)}" + (f", and {len(damaged)} damaged" if damaged else ""))
    for r in runs:
        claims = r.result.get("claims", [])
        ok = verdict_counts(claims)["reproduced"]
        print(f"  {r.run_id:<48} {str(r.config.get('finished', '')):<20} claims {ok}/{len(claims)} reproduced  "
              f"[{where(r.path)}]")
    for d in damaged:
        print(f"  {d.run_id:<48} DAMAGED: {d.why}  [{where(d.path)}]")
    if damaged:
        print(f"('ndgm store check --repair --out {args.out}' moves the damaged runs aside)")
    return 0


def cmd_show(args) -> int:
    store = RunStore(args.out)
    run = store.load(args.run)  # a damaged folder is a one-line error saying what is wrong
    arrays = run.arrays() if args.plot else None  # before printing: a missing metrics.npz is the error
    if args.json:
        print(json.dumps(run.result, indent=2))
        return 0
    print(f"run:        {run.run_id}  ({run.path})")
    print(f"experiment: {run.experiment}")
    print("config:     " + ", ".join(f"{k}={v}" for k, v in run.config.get("config", {}).items()))
    v = run.config.get("versions", {})
    v = v if isinstance(v, dict) else {}
    print(f"versions:   ndgm {v.get('ndgm')}, torch {v.get('torch')}, numpy {v.get('numpy')}")
    env = run.environment
    if env:
        print(f"threads:    {env.get('threads')} (torch), device {env.get('device')}, dtype {env.get('dtype')}, "
              f"deterministic algorithms {env.get('deterministic_algorithms')}")
    print("summary:")
    for k, val in run.result.get("summary", {}).items():
        print(f"  {k}: {val}")
    print(claims_table([ledger_row(run.experiment, c) for c in run.result.get("claims", [])],
                       full=f"the full table: 'ndgm show {run.run_id} --json' or {run.path / 'result.json'}"))
    if args.plot:
        from .figures import render

        paths = render(run.figures, arrays, run.result.get("summary", {}), run.config.get("config", {}), run.path,
                       strict=False)
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
    print(claims_table(ledger, full=f"the full table: {out / 'claims.md'}"))
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


def cmd_sweep(args) -> int:
    from .experiments import get_experiment
    from .sweep import connect, expand, parse_grid, parse_set, plan_sweep, run_sweep, sweep_table, write_table

    exp = get_experiment(args.experiment)
    configs = expand(exp.name, parse_grid(args.grid), seeds=args.seeds, quick=args.quick, fixed=parse_set(args.set))
    out = Path(args.out)
    store = RunStore(out / "runs")
    plan = plan_sweep(exp.name, configs, store, threads=args.threads)  # reads only
    # Connect before anything is written: a bad or silent scheduler is one line and nothing on disk.
    client = connect(args.scheduler) if (args.scheduler and plan.todo) else None
    try:
        ensure_writable(out)
        print(f"sweep {exp.name}: {len(configs)} configurations, {len(plan.finished)} already finished, "
              f"{len(plan.todo)} to run" + (f" on {args.scheduler}" if args.scheduler else "")
              + f", {args.threads} thread(s) each", file=sys.stderr, flush=True)
        outcome = run_sweep(plan, store, workers=args.workers, progress=not args.no_progress, threads=args.threads,
                            client=client)
    finally:
        if client is not None:
            client.close()
    table = sweep_table(exp.name, configs, store, failed=outcome.failed)
    csv, pq = write_table(table, out, stem=f"sweep-{exp.name}")
    print(f"{len(table)} runs tabulated in {csv} and {pq}")
    if outcome.failed:
        cfg, err = outcome.failed[0]
        print(f"ndgm: {len(outcome.failed)} of {len(plan.todo)} configurations failed (rows with status 'failed'; "
              f"running the sweep again retries them); the first: {err}", file=sys.stderr)
        return 1
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


def cmd_store(args) -> int:
    if args.store_command != "check":
        raise NdgmError("which store action? choose check")
    report = RunStore(args.out).check(repair=args.repair)
    root = Path(args.out)

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:  # pragma: no cover
            return str(p)

    print(f"store {args.out}: {report.sound} sound run(s), {len(report.damaged)} damaged, "
          f"{len(report.half_written)} half-written, {len(report.stray_files)} stray temporary file(s)")
    for d in report.damaged:
        print(f"  damaged       {rel(d.path)}: {d.why}")
    for p in report.half_written:
        print(f"  half-written  {rel(p)} (its writer is no longer running)")
    for p in report.stray_files:
        print(f"  stray         {rel(p)}")
    for p in report.in_progress:
        print(f"  in progress   {rel(p)} (left alone: its writer is running)")
    if report.checkpoints:
        print(f"  {len(report.checkpoints)} checkpoint(s) of interrupted runs under {WORKDIR}/ "
              "(resume with --resume true; kept)")
    for a, b in report.moved:
        print(f"  moved {rel(a)} -> {rel(b)}")
    if report.problems:
        print(f"'ndgm store check --repair --out {args.out}' moves them into .damaged/ (nothing is deleted)")
        return 1
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "show": cmd_show, "reproduce": cmd_reproduce,
            "sweep": cmd_sweep, "compare": cmd_compare, "audit": cmd_audit, "store": cmd_store}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _out_of_memory(e: BaseException) -> bool:
    """An allocation that failed (numpy's MemoryError, torch's CPU allocator, CUDA OOM)."""
    text = str(e)
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser(with_experiments=argv[:1] == ["run"])
    _CREATED_DIRS.clear()  # the folders this command creates (a test may call main many times)
    rc = 1
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            rc = 2
            return rc
        rc = COMMANDS[args.command](args)
        return rc
    except NdgmError as e:
        print(f"ndgm: error: {_one_line(e)}", file=sys.stderr)
        rc = 2
        return rc
    except KeyboardInterrupt:
        print("ndgm: interrupted", file=sys.stderr)
        rc = 130
        return rc
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get("NDGM_TRACEBACK"):
            raise
        if _out_of_memory(e):
            print(f"ndgm: error: out of memory ({_one_line(e)[:300]}); use smaller sizes", file=sys.stderr)
            rc = 2
            return rc
        print(f"ndgm: internal error: {type(e).__name__}: {_one_line(e)[:300]} (a bug in ndgm; "
              "NDGM_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return rc
    finally:
        if rc != 0 or sys.exc_info()[0] is not None:
            discard_created_dirs()  # a failed command leaves no empty --out behind


if __name__ == "__main__":
    sys.exit(main())
