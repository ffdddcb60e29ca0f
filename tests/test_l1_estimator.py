"""L1Regression and L1RegressionCV as scikit-learn citizens, with numbers compared to Lasso and LassoCV."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import Lasso, LassoCV
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from ndgm import registry
from ndgm.errors import NdgmError
from ndgm.sparse import L1Regression, L1RegressionCV

TIGHT = dict(tol=1e-14, max_iter=1_000_000)  # Lasso's reference solutions


@pytest.fixture(scope="module")
def diabetes_raw():
    return load_diabetes(return_X_y=True)  # uncentred, unscaled: the intercept matters


def lasso(alpha, **kw):
    return Lasso(alpha=alpha, **{**TIGHT, **kw})


def assert_same_fit(est, ref, atol=1e-8):
    """Same coefficients (to atol relative to the largest), the same exact zeros, the same intercept."""
    scale = max(1.0, float(np.abs(ref.coef_).max()))
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=0, atol=atol * scale)
    np.testing.assert_array_equal(est.coef_ == 0, ref.coef_ == 0)
    assert est.intercept_ == pytest.approx(ref.intercept_, rel=1e-9, abs=atol * scale)


# -- scikit-learn's estimator checks, for every registered method -------------------------------------------

def check_instance(method):
    """An estimator per method with settings that keep the ~60 checks quick: the iterative methods run
    200 steps (the checks test the interface, not convergence; their data are standardised), and the
    adaptive ones a larger step than the 1e-3 default so that 200 steps reach a useful fit."""
    m = registry.get(method)
    if m.family == "solver":
        return L1Regression(method=method)
    return L1Regression(method=method, max_iter=200, lr=0.05 if m.default_lr is not None else None)


EXACT = [check_instance(m) for m in registry.names(family="solver")] + [L1RegressionCV(cv=3, alphas=5)]
ITERATIVE = [check_instance(m) for m in registry.names() if registry.get(m).family != "solver"]


@parametrize_with_checks(EXACT)
def test_sklearn_estimator_checks_exact_methods(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(ITERATIVE)
def test_sklearn_estimator_checks_ndgm_and_proximal_methods(estimator, check):
    check(estimator)


# -- numbers compared to Lasso ------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.01, 0.1, 1.0])
def test_intercept_on_an_uncentred_target_matches_lasso(diabetes_raw, alpha):
    X, y = diabetes_raw
    ref = lasso(alpha).fit(X, y)
    est = L1Regression(alpha, tol=1e-12).fit(X, y)
    assert_same_fit(est, ref)
    assert est.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-10)
    assert est.dual_gap_ <= 1e-12 * np.sum((y - y.mean()) ** 2) / len(y)
    # the case: without an intercept the uncentred target is fitted badly (R^2 < 0); with it, as Lasso
    assert L1Regression(alpha, fit_intercept=False).fit(X, y).score(X, y) < 0 < est.score(X, y)


def test_sample_weight_is_repeating_rows_and_lasso_s_definition(diabetes_raw):
    X, y = diabetes_raw
    sw = np.random.RandomState(0).randint(0, 4, len(y))
    weighted = L1Regression(0.1, tol=1e-12).fit(X, y, sample_weight=sw)
    repeated = L1Regression(0.1, tol=1e-12).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    assert_same_fit(weighted, repeated, atol=1e-9)
    assert_same_fit(weighted, lasso(0.1).fit(X, y, sample_weight=sw))
    # float weights: Lasso's definition (weights rescaled to sum n), sparse or dense
    swf = np.random.RandomState(1).rand(len(y)) * 3
    ref = lasso(0.1).fit(X, y, sample_weight=swf)
    assert_same_fit(L1Regression(0.1, tol=1e-12).fit(X, y, sample_weight=swf), ref)
    assert_same_fit(L1Regression(0.1, tol=1e-12).fit(sp.csc_array(X), y, sample_weight=swf), ref)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sparse_input_matches_dense_and_lasso(fmt, fit_intercept):
    rs = np.random.RandomState(2)
    X = sp.random(200, 500, density=0.02, format=fmt, random_state=rs)
    w = np.zeros(500)
    w[:10] = 5 * rs.randn(10)
    y = X @ w + 3.0 + 0.05 * rs.randn(200)
    alpha = 0.01
    ref = lasso(alpha, fit_intercept=fit_intercept).fit(X, y)
    est = L1Regression(alpha, fit_intercept=fit_intercept, tol=1e-12).fit(X, y)
    assert_same_fit(est, ref)
    assert_same_fit(L1Regression(alpha, fit_intercept=fit_intercept, tol=1e-12).fit(X.toarray(), y), ref)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-8, atol=1e-8)
    assert est.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-9)


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csc_array])
def test_sparse_estimator_never_densifies(kind, monkeypatch):
    """Intercept (implicit centring) and sample weights on a sparse design: no dense copy of X anywhere,
    and still Lasso's solution."""
    rs = np.random.RandomState(5)
    X = kind(sp.random(300, 1200, density=0.02, random_state=rs, data_rvs=rs.randn))
    n, d = X.shape
    w = np.zeros(d)
    w[:8] = 4 * rs.randn(8)
    y = np.asarray(X @ w).reshape(-1) + 2.0 + 0.05 * rs.randn(n)
    sw = rs.rand(n) + 0.5
    alpha = 0.01  # about alpha_max / 25: 17 nonzeros
    ref = lasso(alpha).fit(X, y, sample_weight=sw)
    assert 10 <= int((ref.coef_ != 0).sum()) <= 30
    sizes = []

    def guard(original, size):
        def patched(self, *a, **k):
            sizes.append(size(self))
            assert sizes[-1] < n * d / 4, "a large block of X was densified"
            return original(self, *a, **k)
        return patched

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array, sp.coo_matrix, sp.coo_array):
        monkeypatch.setattr(cls, "toarray", guard(cls.toarray, lambda A: A.shape[0] * A.shape[1]))
    monkeypatch.setattr(torch.Tensor, "to_dense", guard(torch.Tensor.to_dense, lambda T: T.shape[0] * T.shape[-1]))
    est = L1Regression(alpha, tol=1e-12).fit(X, y, sample_weight=sw)
    assert_same_fit(est, ref)
    assert est.dual_gap_ <= 1e-12 * float(np.sum(sw * (y - np.average(y, weights=sw)) ** 2))


def test_torch_inputs_dense_and_sparse(diabetes_raw):
    X, y = diabetes_raw
    ref = L1Regression(0.1, tol=1e-12).fit(X, y)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    np.testing.assert_array_equal(L1Regression(0.1, tol=1e-12).fit(Xt, yt).coef_, ref.coef_)
    for Xs in (Xt.to_sparse_coo(), Xt.to_sparse_csr()):
        est = L1Regression(0.1, tol=1e-12).fit(Xs, yt)
        assert_same_fit(est, ref, atol=1e-10)
        np.testing.assert_allclose(est.predict(Xs), ref.predict(X), rtol=1e-10)


def test_pipeline_grid_search_scores_equal_lasso(diabetes_raw):
    X, y = diabetes_raw
    grid = {"model__alpha": [0.01, 0.1, 0.5, 1.0, 2.0]}
    cv = KFold(5, shuffle=True, random_state=0)
    ours = GridSearchCV(make_pipeline(StandardScaler(), L1Regression(tol=1e-12)).set_output(transform="default"),
                        {"l1regression__alpha": grid["model__alpha"]}, cv=cv).fit(X, y)
    ref = GridSearchCV(make_pipeline(StandardScaler(), lasso(1.0)), {"lasso__alpha": grid["model__alpha"]}, cv=cv).fit(X, y)
    scores, ref_scores = ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and len(np.unique(scores)) == len(scores)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-9)
    assert ours.best_params_["l1regression__alpha"] == ref.best_params_["lasso__alpha"] == 1.0  # not the first alpha
    split = cross_val_score(make_pipeline(StandardScaler(), L1Regression(0.5, tol=1e-12)), X, y, cv=cv)
    np.testing.assert_allclose(split, cross_val_score(make_pipeline(StandardScaler(), lasso(0.5)), X, y, cv=cv),
                               rtol=1e-9)


def test_positive_matches_lasso(diabetes_raw):
    X, y = diabetes_raw
    ref = lasso(0.05, positive=True).fit(X, y)
    est = L1Regression(0.05, positive=True, tol=1e-12).fit(X, y)
    assert_same_fit(est, ref)
    assert est.coef_.min() == 0.0 and (est.coef_ == 0).sum() > (L1Regression(0.05).fit(X, y).coef_ == 0).sum()
    with pytest.raises(ValueError, match="positive=True needs an exact method"):
        L1Regression(0.05, method="adam", positive=True).fit(X, y)


def test_warm_start(diabetes_raw):
    X, y = diabetes_raw
    est = L1Regression(0.1, warm_start=True, tol=1e-12).fit(X, y)
    first = est.coef_.copy()
    est.fit(X, y)
    assert est.n_iter_ == 0  # started at the solution: one gap check
    np.testing.assert_array_equal(est.coef_, first)
    # gradient descent has no state: 100 + 100 warm-started steps are 200 steps, bit for bit
    Xs = StandardScaler().fit_transform(X)
    twice = L1Regression(0.1, method="sgd", max_iter=100, warm_start=True).fit(Xs, y)
    twice.fit(Xs, y)
    once = L1Regression(0.1, method="sgd", max_iter=200).fit(Xs, y)
    np.testing.assert_array_equal(twice.coef_, once.coef_)


def test_pandas_input_and_feature_names(diabetes_raw):
    X, y = diabetes_raw
    names = [f"f{j}" for j in range(X.shape[1])]
    df, ys = pd.DataFrame(X, columns=names), pd.Series(y)
    est = L1Regression(0.1, tol=1e-12).fit(df, ys)
    assert list(est.feature_names_in_) == names and est.n_features_in_ == 10
    np.testing.assert_allclose(est.coef_, L1Regression(0.1, tol=1e-12).fit(X, y).coef_, rtol=1e-12)
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(X)


def test_unfitted_and_wrong_width():
    with pytest.raises(NotFittedError):
        L1Regression().predict(np.ones((2, 3)))
    est = L1Regression(alpha=0.1).fit(np.eye(4), np.arange(4.0))
    with pytest.raises(ValueError, match="X has 3 features, but L1Regression is expecting 4 features"):
        est.predict(np.ones((2, 3)))


@pytest.mark.parametrize("kwargs,needle", [
    (dict(alpha=-0.1), "alpha"), (dict(alpha="x"), "alpha"), (dict(method="lbfgs"), "method must be one of sgd"),
    (dict(max_iter=0), "max_iter"), (dict(lr=-1.0), "lr"), (dict(tol=0.0), "tol"), (dict(dtype="int8"), "dtype"),
    (dict(fit_intercept="yes"), "fit_intercept"), (dict(device="tpu"), "device"),
])
def test_bad_parameters_name_the_argument(kwargs, needle):
    est = L1Regression(**kwargs)  # __init__ only stores
    with pytest.raises(NdgmError, match=needle):
        est.fit(np.ones((5, 3)), np.arange(5.0))


def test_convergence_warning_when_max_iter_runs_out(diabetes_raw):
    X, y = diabetes_raw
    with pytest.warns(ConvergenceWarning, match="duality gap"):
        L1Regression(0.001, max_iter=2, tol=1e-14).fit(X, y)


def test_the_paradox_in_three_lines(diabetes_raw):
    X, y = StandardScaler().fit_transform(diabetes_raw[0]), diabetes_raw[1]
    zeros = {type(e).__name__ + getattr(e, "method", ""): int((e.fit(X, y).coef_ == 0).sum())
             for e in (Lasso(alpha=2.0), L1Regression(2.0, method="adam", lr=0.1, max_iter=2000), L1Regression(2.0))}
    assert zeros == {"Lasso": 3, "L1Regressionadam": 0, "L1Regressionfista": 3}


def test_cv_matches_lasso_cv(diabetes_raw):
    X, y = diabetes_raw
    Xs = StandardScaler().fit_transform(X)
    cv = KFold(4, shuffle=True, random_state=0)
    ref = LassoCV(alphas=20, cv=cv, **TIGHT).fit(Xs, y)
    est = L1RegressionCV(alphas=20, cv=cv, tol=1e-12).fit(Xs, y)
    np.testing.assert_allclose(est.alphas_, ref.alphas_, rtol=1e-12)
    assert est.mse_path_.shape == ref.mse_path_.shape == (20, 4)
    np.testing.assert_allclose(est.mse_path_, ref.mse_path_, rtol=1e-8)
    assert np.argmin(est.mse_path_.mean(1)) == np.argmin(ref.mse_path_.mean(1))
    assert est.alpha_ == pytest.approx(ref.alpha_, rel=1e-13)
    assert_same_fit(est, ref)
    # given alphas are sorted decreasing; weights enter the fits and the held-out errors as for LassoCV
    sw = np.random.RandomState(3).rand(len(y)) + 0.5
    ref = LassoCV(alphas=[0.05, 1.0, 0.3], cv=cv, **TIGHT).fit(Xs, y, sample_weight=sw)
    est = L1RegressionCV(alphas=[0.05, 1.0, 0.3], cv=cv, tol=1e-12).fit(Xs, y, sample_weight=sw)
    np.testing.assert_array_equal(est.alphas_, [1.0, 0.3, 0.05])
    np.testing.assert_allclose(est.mse_path_, ref.mse_path_, rtol=1e-8)
    assert est.alpha_ == ref.alpha_


def test_cv_with_an_ndgm_method_runs_the_path_in_one_batch(diabetes_raw):
    X, y = StandardScaler().fit_transform(diabetes_raw[0]), diabetes_raw[1]
    est = L1RegressionCV(alphas=5, cv=3, method="sgd", max_iter=300).fit(X, y)
    assert est.mse_path_.shape == (5, 3) and np.all(np.isfinite(est.mse_path_))
    assert np.all(est.coef_ != 0) and est.n_iter_ == 300
