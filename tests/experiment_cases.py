"""One tiny configuration and the bad values of every registered experiment.

`tests/test_experiment_contract.py` runs the shared contract over the registry with these;
it fails for an experiment that has no entry here. A tiny case is about speed (a second or
two), not science: its claims need not hold, only be computable and storable.

``BAD[name]``: command-line arguments after ``ndgm run NAME`` that must be refused with
exit code 2 and one line containing the needle.
"""

TINY = {
    "capture": dict(iterations=50, n=40, d=6, quad_iterations=30),
    "activations": dict(depths="vgg11", activations="relu,gelu", batch_norm="both", epochs=1, train_size=16,
                        val_size=8, batch_size=16, n_seeds=2, workers=1, threads=1),
    "l1-deep": dict(arch="mlp", optimizers="sgd,adam", prox_optimizers="prox-sgd", n_seeds=2, epochs=1,
                    train_size=16, val_size=8, batch_size=16, workers=1, threads=1),
    "gdmap-1d": dict(starts=50, iterations=50, probe_samples=500, saddle_starts=20),
    "nonsingularity": dict(archs="mlp", activations="relu,gelu", n_train=16, side=2, points=2, eta_grid=4,
                           random_etas=4, sgd_batches=1, batch_size=4, steps=2, ball_points=2, path_points=3,
                           saddle_width=2, saddle_starts=8, saddle_steps=40),
    "stability-toy": dict(traj_steps=500, lyap_steps=400),
    "bifurcation": dict(n_eta=40, transient=500, record=64, max_period=16),
    "sgd-montecarlo": dict(runs=4, steps=200),
    "lasso-toy": dict(d=10, lr=0.1, lams="1,10", iterations=120),
    "lasso-2d": dict(iterations=60),
    "lasso-variants": dict(d=10, lams="0.1,10", iterations=150, hit_warmup=20, hit_after=20),
    "lasso-adam": dict(d=8, iterations=350, tail=50),
    "lasso-duality": dict(n=10, d=3, lam1s="0,1", lam2s="0,1", mus="0,1", samples=20),
    "prox-relu": dict(n=10, hidden=3, iterations=40, ref_iterations=20, halvings=1, ndgm_iterations=20, seeds=3),
    "wu-ma-e": dict(fractions="0.2,1.05", runs=4, iterations=60, lyap_steps=80),
    "lasso-general": dict(n=30, d=5, iterations=200, grid=8),
    "lasso-real": dict(iterations=200, prox_iterations=200),
    "eos-huber": dict(n=8, d=30, iterations=200, num_eta=3),
    "rates": dict(n=40, d=4, iterations=300, num_eps=3, eps_lo=0.1),
    "sharpness": dict(width=8, depth=1, steps=20, every=10, n_train=100, k=1, top=2, adam_steps=20, adam_every=10),
    "prune": dict(arms="adam-l1,prox-adam-group", l1_lams="0.01", group_lams="0.3", width=0.25, n_seeds=2, epochs=1,
                  train_size=32, val_size=16, batch_size=32, timing_batch=4, timing_repeats=3, threads=1),
}

BAD = {
    "capture": [
        (["--lr", "-1"], "--lr must be a finite number > 0"),
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--iterations", "2.5"], "--iterations must be an integer"),
        (["--iterations", "ten"], "--iterations must be an integer"),
        (["--decay", "1.5"], "--decay must be < 1"),
    ],
    "activations": [
        (["--depths", "vgg12"], "--depths: unknown 'vgg12'; choose from vgg11"),
        (["--depths", "vgg11,vgg11"], "--depths must not repeat an entry"),
        (["--activations", "relu,swish"], "--activations: unknown activation 'swish'"),
        (["--batch-norm", "maybe"], "--batch-norm must be one of off, on, both"),
        (["--data-dir", "/no/such/dir"], "expected the CIFAR-10 python folder"),
        (["--n-seeds", "1"], "--n-seeds must be"),
        (["--equivalence-margin", "0"], "--equivalence-margin must be a finite number > 0"),
        (["--workers", "-1"], "--workers must be"),
    ],
    "l1-deep": [
        (["--lams", "2,abc"], "--lams must be a comma-separated list of numbers, got '2,abc'"),
        (["--lams", "2,-1"], "--lams must list finite numbers > 0"),
        (["--lams", "2,2"], "--lams must not repeat an entry"),
        (["--optimizers", "sgd,lbfgs"], "--optimizers: unknown 'lbfgs'; choose from sgd, rmsprop, adam"),
        (["--prox-optimizers", "prox-rda"], "--prox-optimizers: unknown 'prox-rda'; choose from prox-sgd, prox-adam or none"),
        (["--weights", "/no/such/file.pt"], "--weights '/no/such/file.pt': no such file"),
        (["--resume", "perhaps"], "--resume must be true or false"),
        (["--lams", "0.002,2"], "--lams must be two L1 weights, the larger first"),
        (["--learning-lams", "1e-3"], "--learning-lams must be two L1 weights, the larger first"),
        (["--protocol", "leaky"], "--protocol must be one of fresh, paper, both"),
        (["--arch", "resnet"], "--arch must be one of vgg11, vgg13, vgg16, vgg19, mlp"),
    ],
    "gdmap-1d": [
        (["--eta-singular", "0"], "--eta-singular must be a finite number > 0"),
        (["--t-max", "1.5"], "--t-max must be > 2"),
    ],
    "nonsingularity": [
        (["--archs", "mlp,rnn"], "--archs: unknown 'rnn'; choose from mlp, cnn, attention"),
        (["--activations", "relu,relu"], "--activations must not repeat an entry"),
        (["--activations", "swish"], "--activations: unknown 'swish'"),
        (["--losses", "hinge"], "--losses: unknown 'hinge'; choose from mse, ce"),
        (["--side", "3"], "--side must be 2, 4 or 8"),
        (["--eta-min", "1", "--eta-max", "0.5"], "--eta-min must be < --eta-max"),
        (["--eta-max", "-1"], "--eta-max must be a finite number > 0"),
        (["--points", "1"], "--points must be an integer >= 2"),
        (["--batch-size", "100", "--n-train", "50"], "--batch-size must be <= --n-train"),
        (["--ball-radius", "0"], "--ball-radius must be a finite number > 0"),
        (["--saddle-activation", "relu"], "--saddle-activation must be one of gelu, tanh"),
        (["--escape-distance", "1e-4"], "--escape-distance must be > --saddle-radius"),
        (["--dtype", "float32"], "nonsingularity runs with dtype float64 only"),
    ],
    "stability-toy": [
        (["--p1", "1.5"], "--p1 must lie in [0, 1]"),
        (["--p2", "-0.1"], "--p2 must be a finite number >= 0"),
        (["--eta1", "-0.3"], "--eta1 must be a finite number > 0"),
        (["--gd-weighting", "both"], "--gd-weighting must be one of uniform, p-weighted"),
        # float64 on the CPU only: a float32 request is refused, not silently ignored
        (["--dtype", "float32"], "stability-toy runs with dtype float64 only"),
    ],
    "bifurcation": [
        (["--period", "0"], "--period must be an integer >= 1"),
        (["--eta-min", "0.4", "--eta-max", "0.3"], "--eta-min must be < --eta-max"),
        (["--dtype", "float32"], "got --dtype float32"),
    ],
    "sgd-montecarlo": [
        (["--p", "2"], "--p must lie in [0, 1]"),
        (["--eta", "0"], "--eta must be a finite number > 0"),
    ],
    "lasso-toy": [
        (["--lams", "1,x"], "--lams must be a comma-separated list of numbers"),
        (["--lams", "none"], "--lams must list at least 1 entry"),
        (["--iterations", "10"], "--iterations must be >="),
    ],
    "lasso-2d": [
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--w0", "x"], "--w0 must be a number"),
    ],
    "lasso-variants": [
        (["--momentum", "1.5"], "--momentum must be < 1"),
        (["--lams", "1"], "--lams must list at least 2 entries"),
    ],
    "lasso-adam": [
        (["--beta1", "1.5"], "--beta1 must be < 1"),
        (["--beta1-low", "0.99", "--beta1-high", "0.9"], "--beta1-low must be < --beta1-high"),
        (["--iterations", "100"], "--iterations must be >="),
        (["--lams", "1,1"], "--lams must not repeat an entry"),
        (["--dtype", "float32"], "lasso-adam runs with dtype float64 only"),
    ],
    "lasso-duality": [
        (["--lam1s=-1,2"], "--lam1s must list finite numbers >= 0"),
        (["--toy-lam", "0"], "--toy-lam must be a finite number > 0"),
        (["--n", "1"], "--n must be >= 2"),
    ],
    "prox-relu": [
        (["--lr", "3"], "--lr must be < 2"),
        (["--seeds", "1"], "--seeds must be an integer >= 2"),
        (["--smooth", "tanh"], "--smooth: unknown 'tanh'; choose from softplus, gelu"),
        (["--dtype", "float32"], "prox-relu runs with dtype float64 only"),
    ],
    "wu-ma-e": [
        (["--n", "5"], "--n must exceed the 5 parameters"),
        (["--fractions", "0.2,-1"], "--fractions must list finite numbers > 0"),
        (["--delta", "0"], "--delta must be a finite number > 0"),
    ],
    "lasso-general": [
        (["--lam-max", "10"], "four decades"),
        (["--lr", "0.5"], "--lr must be < 2/L"),
    ],
    "lasso-real": [
        (["--alphas=-0.1"], "--alphas must list finite numbers >= 0"),
    ],
    "eos-huber": [
        (["--n", "50", "--d", "10"], "--d must exceed --n"),
        (["--eta-hi", "0.5"], "--eta-hi must be > 1"),
    ],
    "rates": [
        (["--eps-lo", "2"], "--eps-lo must be < --eps-hi"),
        (["--eps-hi", "-1"], "--eps-hi must be a finite number > 0"),
    ],
    "sharpness": [
        (["--k", "100000"], "--k must be at most the number of parameters"),
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--lr", "-0.1"], "--lr must be a finite number > 0"),
        (["--activation", "sigmoid"], "--activation must be one of relu, gelu, tanh"),
        (["--top", "100000"], "--top must be at most the number of parameters"),
        (["--adam-beta1", "1"], "--adam-beta1 must be < 1"),
        (["--adam-steps", "10", "--adam-every", "20"], "--adam-every must be <= --adam-steps"),
    ],
    "prune": [
        (["--arms", "adam-l1,lbfgs"], "--arms: unknown 'lbfgs'"),
        (["--l1-lams", "0.001,0.001"], "--l1-lams must not repeat an entry"),
        (["--group-lams", "0.001,-1"], "--group-lams must list finite numbers > 0"),
        (["--n-seeds", "1"], "--n-seeds must be"),
        (["--width", "40"], "--width must be at most 16"),
        (["--momentum", "1.5"], "--momentum must be < 1"),
        (["--init", "xavier"], "--init must be one of kaiming, torch"),
        (["--data-dir", "/no/such/dir"], "expected the CIFAR-10 python folder"),
    ],
}
