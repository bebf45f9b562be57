"""PELS-VAE: shapes, generation at any phases, loss on real CRTS windows, bundle round trip, regression."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch

from models.bundle import BundleFormatError
from models.latent_regression import (
    FOREST_SETTINGS,
    REGRESSORS,
    LatentRegression,
    _with_dummy,
    fit_latent_regression,
)
from models.pelsvae import (
    DEFAULT_GENERATOR_BUNDLE,
    PARAMS,
    PelsVAE,
    PelsVaeBundle,
    load_pelsvae_bundle,
    save_pelsvae_bundle,
    vae_loss,
)
from models.pelsvae_train import (
    PelsVaeTrainConfig,
    batch_tensors,
    class_catalogue,
    onehot,
    sequences_from_windows,
)
from models.windows import Windows

CLASSES = ["RRab", "EW"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors and matrices: on the shared 2-core machine extra threads only slow them down."""
    from threadpoolctl import threadpool_limits

    from models.pelsvae import single_threaded

    with single_threaded(), threadpool_limits(1):
        yield


def small_bundle(seed: int = 0) -> PelsVaeBundle:
    """An untrained two-class generator with a real (linear) latent regression and a catalogue."""
    torch.manual_seed(seed)
    model = PelsVAE(len(CLASSES), hidden=8, depth=2, kernel=5, latent=3)
    model.set_param_scaling([-0.3, -0.8, 15.0], [0.3, 0.2, 1.0])
    rng = np.random.default_rng(seed)
    x = np.hstack([np.eye(2)[rng.integers(2, size=60)], rng.normal(size=(60, 3))])
    z = x[:, :3] @ rng.normal(size=(3, 3))
    regression = fit_latent_regression(x[:40], z[:40], x[40:], z[40:], candidates=("linear",))
    catalogue = {
        "RRab": np.array(
            [[np.log10(0.6), np.log10(0.25), 15.2, 0.05], [np.log10(0.5), np.log10(0.3), 16.0, 0.08]]
        ),
        "EW": np.array([[np.log10(0.3), np.log10(0.15), 14.8, 0.04]]),
    }
    meta = {"hyperparameters": {"latent": 3, "hidden": 8, "depth": 2, "kernel": 5}}
    return PelsVaeBundle("test-gen", "0.0.1", CLASSES, model, regression, catalogue, meta)


def sine_windows(n: int = 6, length: int = 80, shift: float = 0.3) -> Windows:
    """Windows of a sinusoid (brightest at `shift`), built the way broker.folding builds them."""
    rng = np.random.default_rng(1)
    x = np.zeros((n, 200, 3), np.float32)
    aux = np.tile(np.array([15.0, 0.21, -0.2], np.float32), (n, 1))
    for i in range(n):
        phase = np.sort(rng.uniform(size=length))
        mag = 0.3 * np.cos(2 * np.pi * (phase - shift - 0.5))
        std = mag.std()
        x[i, :length, 0] = np.diff(phase, prepend=phase[-1] - 1.0)
        x[i, :length, 1] = (mag - mag.mean()) / std
        x[i, :length, 2] = 0.01 / std
        aux[i, 1] = std
    return Windows(
        x, aux, np.full(n, length, np.int32), np.arange(n).astype(object), np.full(n, "RRab", object)
    )


# ------------------------------------------------------------------------------------------ the network


def test_forward_shapes_and_any_length():
    model = PelsVAE(3, hidden=8, depth=3, kernel=7, latent=4).eval()
    for length in (5, 40, 130):  # shorter than the padding too: circular padding wraps
        phase = torch.sort(torch.rand(2, length), dim=1).values
        mag, err = torch.randn(2, length), torch.full((2, length), 0.1)
        mag_hat, mu, logvar = model(phase, mag, err, torch.eye(3)[:2], torch.randn(2, 3))
        assert mag_hat.shape == (2, length) and mu.shape == (2, 4) and logvar.shape == (2, 4)


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        PelsVAE(2, kernel=4)


def test_generate_at_arbitrary_phases_and_times():
    bundle = small_bundle()
    for m in (1, 7, 100, 333):
        out = bundle.generate(
            "RRab",
            {"period": 0.55, "amplitude": 0.25, "mean_mag": 15.0},
            phases=np.random.default_rng(m).uniform(size=m),
            n=3,
            noise=0.05,
            seed=m,
        )
        assert out.mag.shape == out.magerr.shape == out.clean.shape == (3, m)
        assert np.isfinite(out.mag).all() and np.allclose(out.magerr, 0.05)
    times = np.sort(np.random.default_rng(0).uniform(0, 500, 250))
    out = bundle.generate("EW", None, times=times, n=4, noise=0.0, seed=1)
    assert out.mag.shape == (4, 250) and np.array_equal(out.mag, out.clean)
    assert out.params.shape == (4, len(PARAMS)) and (out.peak_to_peak > 0).all()
    again = bundle.generate("EW", None, times=times, n=4, noise=0.0, seed=1)
    assert np.array_equal(out.mag, again.mag)  # seeded


def test_decode_does_not_depend_on_the_order_of_the_phases():
    bundle = small_bundle()
    rng = np.random.default_rng(3)
    phases = rng.uniform(size=(2, 257))  # three interleaved chunks plus filler
    z, params = rng.normal(size=(2, 3)), np.tile([-0.3, -0.7, 15.0], (2, 1))
    direct = bundle.decode(z, "RRab", params, phases)
    perm = rng.permutation(257)
    assert np.allclose(bundle.decode(z, "RRab", params, phases[:, perm]), direct[:, perm], atol=1e-5)


def test_generate_rejects_bad_requests():
    bundle = small_bundle()
    with pytest.raises(ValueError, match="not one of"):
        bundle.generate("Mira", None, phases=np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="exactly one"):
        bundle.generate("RRab", None)
    with pytest.raises(ValueError, match="noise"):
        bundle.generate("RRab", None, phases=np.linspace(0, 1, 10), noise=-1.0)
    with pytest.raises(ValueError, match="period"):
        bundle.generate("RRab", {"amplitude": 0.2, "mean_mag": 15}, phases=np.linspace(0, 1, 10))


def test_alignment_puts_the_brightest_phase_at_zero():
    seqs = sequences_from_windows(sine_windows(shift=0.3))
    for i in range(len(seqs)):
        k = seqs.lengths[i]
        brightest = seqs.phase[i, :k][np.argmin(seqs.mag[i, :k])]
        assert min(brightest, 1 - brightest) < 0.03
    assert np.allclose(seqs.params[:, 0], -0.2) and np.allclose(seqs.params[:, 2], 15.0)
    assert np.allclose(seqs.noise, 0.01, rtol=1e-3)


def test_catalogue_has_one_row_per_training_object():
    seqs = sequences_from_windows(sine_windows(n=6))
    seqs.object_ids[:] = np.array(["a", "a", "b", "b", "c", "c"], object)
    seqs.labels[4:] = "EW"
    catalogue = class_catalogue(seqs)
    assert sorted(catalogue) == ["EW", "RRab"]
    assert catalogue["RRab"].shape == (2, len(PARAMS) + 1) and catalogue["EW"].shape == (1, len(PARAMS) + 1)
    assert np.allclose(catalogue["EW"][0, : len(PARAMS)], np.median(seqs.params[4:], axis=0))


# --------------------------------------------------------------------------------- training on real data


@pytest.fixture(scope="module")
def crts_sequences(shared_data, tmp_path_factory):
    """Windows of the first CRTS light curves (streamed from the archive), folded with the plugin's search."""
    from broker.folding import WindowConfig, make_windows_batch
    from broker.period import PeriodSearchConfig, search_periods
    from models.data import read_crts

    folder = tmp_path_factory.mktemp("crts")
    with tarfile.open(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz", "r:xz") as archive:
        taken = 0
        for member in archive:
            if member.isfile() and member.name.endswith(".csv") and taken < 24:
                (folder / member.name.split("/")[-1]).write_bytes(archive.extractfile(member).read())
                taken += 1
            if taken == 24:
                break
    objects = read_crts(folder)
    periods = [r.period_days for r in search_periods([o.lightcurve for o in objects], PeriodSearchConfig())]
    windows = make_windows_batch(
        [o.lightcurve for o in objects],
        periods,
        [o.object_id for o in objects],
        [o.label for o in objects],
        WindowConfig(),
    )
    return sequences_from_windows(windows)


def test_loss_decreases_on_a_tiny_real_subset(crts_sequences):
    seqs = crts_sequences
    classes = sorted(set(seqs.labels))
    torch.manual_seed(0)
    model = PelsVAE(len(classes), hidden=16, depth=2, kernel=7)
    model.set_param_scaling(seqs.params.mean(0), seqs.params.std(0) + 1e-3)
    config = PelsVaeTrainConfig(seq_len=60)
    index = np.arange(min(16, len(seqs)))
    batch = batch_tensors(seqs, index, 60, np.random.default_rng(0), config, augment=False)
    cond = (onehot(seqs.labels[index], classes), torch.as_tensor(seqs.params[index], dtype=torch.float32))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        mag_hat, mu, logvar = model(*batch, *cond)
        loss, _, _ = vae_loss(mag_hat, batch[1], batch[2], mu, logvar)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_batches_are_phase_sorted_with_the_requested_length(crts_sequences):
    config = PelsVaeTrainConfig()
    phase, mag, err = batch_tensors(crts_sequences, np.arange(8), 120, np.random.default_rng(2), config, True)
    assert phase.shape == mag.shape == err.shape == (8, 120)
    assert (torch.diff(phase, dim=1) >= 0).all() and (phase >= 0).all() and (phase < 1).all()


# ---------------------------------------------------------------------------------------------- bundles


def test_bundle_round_trip(tmp_path):
    bundle = small_bundle()
    path = save_pelsvae_bundle(bundle, tmp_path / "gen")
    loaded = load_pelsvae_bundle(path)
    assert loaded.class_names == CLASSES and loaded.regression.kind == bundle.regression.kind
    assert loaded.metadata == bundle.metadata
    phases = np.linspace(0, 1, 50)
    a = bundle.generate("RRab", None, phases=phases, n=2, seed=5)
    b = loaded.generate("RRab", None, phases=phases, n=2, seed=5)
    assert np.allclose(a.mag, b.mag, atol=1e-4)
    document = json.loads((path / "metadata.json").read_text())
    assert document["kind"] == "generator" and document["params"] == list(PARAMS)
    assert set(document["regression"]["rmse"]) == {"linear"}


def test_load_names_what_is_missing(tmp_path):
    path = save_pelsvae_bundle(small_bundle(), tmp_path / "gen")
    (path / "regression.npz").unlink()
    with pytest.raises(BundleFormatError, match=r"regression\.npz"):
        load_pelsvae_bundle(path)


def test_committed_default_bundle_generates():
    bundle = load_pelsvae_bundle(DEFAULT_GENERATOR_BUNDLE)
    size = sum(f.stat().st_size for f in DEFAULT_GENERATOR_BUNDLE.iterdir())
    assert size < 2_000_000
    assert {"RRab", "EW", "HADS", "LPV"} <= set(bundle.class_names) and "RS_CVn" not in bundle.class_names
    assert set(bundle.regression.rmse) == set(REGRESSORS)
    out = bundle.generate("RRab", None, times=np.sort(np.random.default_rng(0).uniform(0, 900, 300)), n=2)
    assert out.mag.shape == (2, 300) and np.isfinite(out.mag).all()


# ------------------------------------------------------------------------------------ latent regression


def regression_data(kind: str, n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    if kind == "linear":
        z = x @ np.array([[1.0, -2.0], [0.5, 0.3], [0.0, 1.0]]) + 0.05 * rng.normal(size=(n, 2))
    else:  # steps: what a forest or an MLP fits and a line cannot
        z = np.column_stack([np.sign(x[:, 0]) * 2, (np.abs(x[:, 1]) > 1).astype(float) * 3])
    return x[: n // 2], z[: n // 2], x[n // 2 :], z[n // 2 :]


def test_regression_keeps_the_lowest_validation_rmse():
    for kind in ("linear", "steps"):
        chosen = fit_latent_regression(*regression_data(kind))
        assert set(chosen.rmse) == set(REGRESSORS)
        assert chosen.kind == min(chosen.rmse, key=chosen.rmse.get)
        assert chosen.residual_std.shape == (2,)
    assert fit_latent_regression(*regression_data("steps")).kind != "linear"
    assert fit_latent_regression(*regression_data("linear")).rmse["linear"] < 0.1


def test_forest_arrays_predict_like_scikit_learn():
    from sklearn.ensemble import RandomForestRegressor

    x_train, z_train, x_val, _ = regression_data("steps")
    chosen = fit_latent_regression(x_train, z_train, x_val[:5], _[:5], candidates=("random_forest",))
    reference = RandomForestRegressor(random_state=0, n_jobs=1, **FOREST_SETTINGS)
    reference.fit(_with_dummy(x_train, np.random.default_rng(0)), z_train)
    assert np.allclose(chosen.predict(x_val), reference.predict(_with_dummy(x_val, None)), atol=1e-5)


def test_regression_state_round_trip_and_dummy_diversity():
    chosen = fit_latent_regression(*regression_data("steps"), candidates=("random_forest", "mlp"))
    meta, arrays = chosen.state()
    again = LatentRegression.from_state(json.loads(json.dumps(meta)), arrays)
    x = regression_data("steps")[2]
    assert np.allclose(again.predict(x), chosen.predict(x))
    a, b = chosen.predict(x, np.random.default_rng(1)), chosen.predict(x, np.random.default_rng(2))
    assert a.shape == b.shape == (len(x), 2)
    with pytest.raises(ValueError, match="candidates"):
        fit_latent_regression(*regression_data("linear"), candidates=("svm",))
