"""Regression from a light curve's condition (class + physical parameters) to the PELS-VAE latent space.

Why: the VAE's prior N(0, I) is not where real light curves sit; Martínez-Palomera et al. (2020) generate
by predicting the latent means of real objects from their physical parameters, with one extra uniform
"dummy" input so repeated draws for the same parameters differ. Three regressors are fitted (linear,
random forest, MLP; the paper found the forest best) and the one with the lowest validation RMSE is kept;
all three RMSEs go into the bundle metadata.

The chosen regressor is stored as plain arrays (``LatentRegression.arrays``, saved as .npz without pickle)
and predicted with numpy, so a bundle never unpickles code. The forest's traversal is hand-written for
that reason (a loop over depth on arrays of node indices); a test checks it against scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REGRESSORS = ("linear", "random_forest", "mlp")
N_DUMMY = 1  # uniform inputs appended to the features (the paper's "dummy" dimension)

# Sizes that keep a committed bundle small (a forest of 40 trees of depth <= 8 is < 1 MB of arrays).
FOREST_SETTINGS = {"n_estimators": 40, "max_depth": 8, "min_samples_leaf": 5}
MLP_SETTINGS = {"hidden_layer_sizes": (64, 64), "alpha": 1e-3, "max_iter": 400, "early_stopping": True}


@dataclass
class LatentRegression:
    """A fitted regressor: features (n, d) [+ N_DUMMY uniform columns it adds itself] → latents (n, k).

    kind: one of REGRESSORS. arrays: its parameters (see `_predict_*`). residual_std: (k,) validation
    residual standard deviation per latent dimension (the scatter a generator may add). rmse: validation
    RMSE of every candidate that was fitted, by kind.
    """

    kind: str
    arrays: dict[str, np.ndarray]
    residual_std: np.ndarray
    rmse: dict[str, float] = field(default_factory=dict)

    def predict(self, features: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, k) float64 latent means; the dummy column is U(0, 1) from `rng`, or 0.5 when rng is None."""
        x = _with_dummy(np.asarray(features, np.float64), rng)
        if self.kind == "linear":
            return x @ self.arrays["coef"].T + self.arrays["intercept"]
        if self.kind == "mlp":
            return _predict_mlp(self.arrays, x)
        if self.kind == "random_forest":
            return _predict_forest(self.arrays, x)
        raise ValueError(f"unknown regression kind {self.kind!r}; valid: {list(REGRESSORS)}")

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-ready description, arrays) for a bundle; `from_state` reads them back."""
        meta = {"kind": self.kind, "residual_std": self.residual_std.tolist(), "rmse": self.rmse}
        return meta, dict(self.arrays)

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> LatentRegression:
        if meta.get("kind") not in REGRESSORS:
            raise ValueError(f"unknown regression kind {meta.get('kind')!r}; valid: {list(REGRESSORS)}")
        return cls(
            kind=meta["kind"],
            arrays={k: np.asarray(v) for k, v in arrays.items()},
            residual_std=np.asarray(meta["residual_std"], np.float64),
            rmse={k: float(v) for k, v in meta.get("rmse", {}).items()},
        )


def _with_dummy(x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    dummy = np.full((len(x), N_DUMMY), 0.5) if rng is None else rng.uniform(size=(len(x), N_DUMMY))
    return np.hstack([x, dummy])


def rmse(predicted: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error over all samples and latent dimensions."""
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(target)) ** 2)))


def fit_latent_regression(
    x_train: np.ndarray,
    z_train: np.ndarray,
    x_val: np.ndarray,
    z_val: np.ndarray,
    seed: int = 0,
    candidates: tuple[str, ...] = REGRESSORS,
) -> LatentRegression:
    """Fit every candidate on (x_train + dummy → z_train), keep the lowest RMSE on (x_val, z_val).

    x: (n, d) features (one-hot class + standardised parameters); z: (n, k) latent means. The validation
    predictions use the dummy's mean (0.5), as a point estimate should.
    """
    unknown = sorted(set(candidates) - set(REGRESSORS))
    if unknown or not candidates:
        raise ValueError(f"regression candidates must be among {list(REGRESSORS)}, got {list(candidates)}")
    if len(x_train) != len(z_train) or len(x_val) != len(z_val) or len(x_train) < 2 or len(x_val) < 1:
        raise ValueError(
            f"need matching, non-empty train/val sets: x_train {np.shape(x_train)}, z_train "
            f"{np.shape(z_train)}, x_val {np.shape(x_val)}, z_val {np.shape(z_val)}"
        )
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    x_fit = _with_dummy(np.asarray(x_train, np.float64), rng)
    z_train, z_val = np.asarray(z_train, np.float64), np.asarray(z_val, np.float64)
    with threadpool_limits(1):  # small matrices: BLAS threads on shared cores made the MLP 10x slower
        fitted = {kind: FITTERS[kind](x_fit, z_train, seed) for kind in candidates}
    scores = {}
    for kind, arrays in fitted.items():
        candidate = LatentRegression(kind, arrays, np.zeros(z_val.shape[1]))
        scores[kind] = rmse(candidate.predict(x_val), z_val)
    best = min(scores, key=scores.get)
    chosen = LatentRegression(best, fitted[best], np.zeros(z_val.shape[1]), scores)
    chosen.residual_std = np.std(chosen.predict(x_val) - z_val, axis=0)
    return chosen


# ------------------------------------------------------------------------------------------ fitters


def _fit_linear(x: np.ndarray, z: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(x, z)
    return {"coef": np.atleast_2d(model.coef_), "intercept": np.atleast_1d(model.intercept_)}


def _fit_mlp(x: np.ndarray, z: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    with warnings.catch_warnings():  # max_iter is a budget here; validation RMSE judges the result
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPRegressor(random_state=seed, **MLP_SETTINGS).fit(x, z)
    arrays = {}
    for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    return arrays


def _predict_mlp(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """ReLU hidden layers, identity output (scikit-learn's MLPRegressor defaults)."""
    n_layers = sum(1 for key in arrays if key.startswith("w"))
    h = x
    for i in range(n_layers):
        h = h @ arrays[f"w{i}"] + arrays[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    return h.reshape(len(x), -1)


def _fit_forest(x: np.ndarray, z: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Flatten every tree into shared node arrays; `roots[t]` is tree t's first node."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(random_state=seed, n_jobs=1, **FOREST_SETTINGS).fit(x, z)
    left, right, feature, threshold, value, roots = [], [], [], [], [], []
    offset = 0
    for estimator in model.estimators_:
        tree = estimator.tree_
        is_leaf = tree.children_left < 0
        roots.append(offset)
        left.append(np.where(is_leaf, -1, tree.children_left + offset))
        right.append(np.where(is_leaf, -1, tree.children_right + offset))
        feature.append(np.where(is_leaf, -1, tree.feature))
        threshold.append(tree.threshold)
        value.append(tree.value[:, :, 0])
        offset += tree.node_count
    return {
        "left": np.concatenate(left).astype(np.int32),
        "right": np.concatenate(right).astype(np.int32),
        "feature": np.concatenate(feature).astype(np.int16),
        "threshold": np.concatenate(threshold).astype(np.float64),
        "value": np.concatenate(value).astype(np.float32),
        "roots": np.asarray(roots, np.int32),
    }


def _predict_forest(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Mean over trees of the leaf values reached; splits compare float32 features as scikit-learn does."""
    x32 = x.astype(np.float32).astype(np.float64)
    rows = np.arange(len(x))
    left, right, feature = arrays["left"], arrays["right"], arrays["feature"].astype(np.int64)
    threshold, value = arrays["threshold"], arrays["value"].astype(np.float64)
    total = np.zeros((len(x), value.shape[1]))
    for root in arrays["roots"]:
        node = np.full(len(x), root, np.int64)
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = x32[rows, np.maximum(feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        total += value[node]
    return total / len(arrays["roots"])


FITTERS = {"linear": _fit_linear, "random_forest": _fit_forest, "mlp": _fit_mlp}
