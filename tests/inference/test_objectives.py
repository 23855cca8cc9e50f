"""Objectives: every registered objective trains on both backends; options, schedules, registry."""
import warnings

import numpy as np
import pytest

import probvae as pv
from probvae.inference import objectives

OBJECTIVES = {
    "elbo": {},
    "mean_field": {},
    "iwae": {"num_particles": 2},
    "renyi": {"alpha": 0.5, "num_particles": 2},
    "beta": {"beta": 0.5, "warmup": 2},
    "enum": {},
    "dreg": {"num_particles": 2},
}


def test_names():
    assert set(OBJECTIVES) <= set(objectives.names())
    assert objectives.names()[:len(OBJECTIVES)] == tuple(OBJECTIVES)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_objective_trains(backend, name, small, make_vae, quick_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # Pyro: "enum found no enumerated sites"
        res = quick_fit(make_vae(backend), small.train, objective=name, **OBJECTIVES[name])
    h = res.history
    assert len(h["train_loss"]) == 2 and np.all(np.isfinite(h["train_loss"]))
    assert res.objective == name
    for key, value in OBJECTIVES[name].items():
        assert res.options[key] == value
    expected_weights = [0.25, 0.5] if name == "beta" else [1.0, 1.0]
    # beta=0.5, warmup=2: 0.5 * min(1, (epoch + 1) / 2)
    assert h["kl_weight"] == pytest.approx(expected_weights)
    if name == "iwae":
        scores = pv.evaluate(res, small.test, num_samples=8)
        assert np.isfinite(scores["log_likelihood"]) and np.isfinite(scores["elbo"])
        assert scores["log_likelihood"] >= scores["elbo"]


# ------------------------------------------------------------------ options
def test_unknown_objective_lists_the_known_ones(small, make_vae):
    with pytest.raises(ValueError) as err:
        pv.fit(make_vae("pyro"), small.train, objective="vimco", epochs=1, progress=False)
    assert "'vimco'" in str(err.value)
    assert all(name in str(err.value) for name in OBJECTIVES)


def test_unknown_option_is_a_type_error_naming_it(small, make_vae):
    for backend in ("pyro", "numpyro"):
        with pytest.raises(TypeError, match="alpha") as err:
            pv.fit(make_vae(backend), small.train, objective="elbo", alpha=0.5, epochs=1,
                   progress=False)
        assert "num_particles" in str(err.value)          # and says what it does take


@pytest.mark.parametrize("alpha", [1, 1.0])
def test_renyi_alpha_one_is_refused(alpha, small, make_vae):
    for backend in ("pyro", "numpyro"):
        with pytest.raises(ValueError, match="alpha"):
            pv.fit(make_vae(backend), small.train, objective="renyi", alpha=alpha, epochs=1,
                   progress=False)


@pytest.mark.parametrize("name,options,match", [
    ("iwae", {"num_particles": 0}, "num_particles"),
    ("elbo", {"num_particles": -1}, "num_particles"),
    ("beta", {"beta": 0.0}, "beta must be > 0"),
    ("beta", {"beta": -1.0}, "beta must be > 0"),
    ("beta", {"warmup": -1}, "warmup"),
])
def test_bad_option_values(name, options, match):
    for backend in ("pyro", "numpyro"):
        with pytest.raises(ValueError, match=match):
            objectives.build(name, pv.backends.get(backend), **options)


def test_defaults_are_explicit_per_backend():
    pyro_bk, np_bk = pv.backends.get("pyro"), pv.backends.get("numpyro")
    elbo, schedule = objectives.build("elbo", pyro_bk)
    assert type(elbo).__name__ == "Trace_ELBO" and schedule is None
    assert elbo.vectorize_particles is True and elbo.max_plate_nesting == 1
    assert elbo.num_particles == 1
    iwae, _ = objectives.build("iwae", pyro_bk)
    assert type(iwae).__name__ == "RenyiELBO" and iwae.alpha == 0 and iwae.num_particles == 8
    iwae, _ = objectives.build("iwae", np_bk, num_particles=3)
    assert type(iwae).__name__ == "RenyiELBO" and iwae.alpha == 0 and iwae.num_particles == 3
    renyi, _ = objectives.build("renyi", np_bk, alpha=0.25)
    assert renyi.alpha == 0.25
    enum, _ = objectives.build("enum", np_bk)
    assert type(enum).__name__ == "TraceEnum_ELBO" and enum.max_plate_nesting == 1
    enum, _ = objectives.build("enum", pyro_bk)
    assert type(enum).__name__ == "TraceEnum_ELBO" and enum.max_plate_nesting == 1
    _, schedule = objectives.build("beta", np_bk, beta=2.0, warmup=3)
    assert schedule == objectives.KLSchedule(beta=2.0, warmup=3)


# ------------------------------------------------------------------ KL schedule
def test_kl_schedule():
    s = objectives.KLSchedule(beta=1.0, warmup=4)
    assert [s(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert s.final == 1.0
    assert [objectives.KLSchedule(beta=0.5)(e) for e in range(3)] == [0.5, 0.5, 0.5]
    assert all(objectives.KLSchedule(beta=3.0, warmup=10)(e) > 0 for e in range(10))


def test_beta_warmup_ramps_in_history(backend, small, make_vae, quick_fit):
    res = quick_fit(make_vae(backend), small.train, objective="beta", warmup=4, epochs=4)
    assert res.history["kl_weight"] == [0.25, 0.5, 0.75, 1.0]
    assert np.all(np.isfinite(res.history["train_loss"]))


def test_beta_one_is_the_elbo_and_a_small_beta_is_not(small, make_vae, quick_fit):
    elbo = quick_fit(make_vae("pyro"), small.train, objective="elbo", seed=5)
    beta1 = quick_fit(make_vae("pyro"), small.train, objective="beta", beta=1.0, seed=5)
    small_beta = quick_fit(make_vae("pyro"), small.train, objective="beta", beta=0.01, seed=5)
    np.testing.assert_allclose(beta1.history["train_loss"], elbo.history["train_loss"], rtol=1e-6)
    # the KL term is down-weighted, so the loss is lower (the KL is non-negative on average)
    assert small_beta.history["train_loss"][0] < elbo.history["train_loss"][0]


def test_validation_loss_uses_the_final_kl_weight(small, make_vae, quick_fit):
    """With warm-up the validation loss is the full-weight objective: equal for any warmup
    when the parameters are equal, i.e. on the first epoch's evaluation with lr ~ 0."""
    a = quick_fit(make_vae("pyro"), small.train, objective="beta", warmup=10, epochs=1,
                  validation=small.valid, lr=1e-12, seed=2)
    b = quick_fit(make_vae("pyro"), small.train, objective="beta", warmup=0, epochs=1,
                  validation=small.valid, lr=1e-12, seed=2)
    assert a.history["kl_weight"] == [0.1] and b.history["kl_weight"] == [1.0]
    np.testing.assert_allclose(a.history["valid_loss"], b.history["valid_loss"], rtol=1e-5)
    assert not np.allclose(a.history["train_loss"], b.history["train_loss"], rtol=1e-3)


# ------------------------------------------------------------------ user-registered objectives
@pytest.fixture
def registered():
    added = []

    def register(name, *args, **kw):
        added.append(name)
        return objectives.register(name, *args, **kw)
    yield register
    for name in added:
        objectives._REGISTRY.pop(name, None)


def test_user_registered_objective_trains_by_name(backend, registered, small, make_vae, quick_fit):
    registered("test_elbo_k",
               pyro=lambda bk, num_particles=2: bk.infer.Trace_ELBO(
                   num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1),
               numpyro=lambda bk, num_particles=2: bk.infer.Trace_ELBO(num_particles=num_particles))
    assert "test_elbo_k" in objectives.names()
    res = quick_fit(make_vae(backend), small.train, objective="test_elbo_k", num_particles=3)
    assert res.objective == "test_elbo_k" and res.options["num_particles"] == 3
    assert np.all(np.isfinite(res.history["train_loss"]))
    with pytest.raises(TypeError, match="alpha"):
        pv.fit(make_vae(backend), small.train, objective="test_elbo_k", alpha=0.5, epochs=1,
               progress=False)


def test_user_registered_schedule_drives_kl_weight(registered, small, make_vae, quick_fit):
    registered("test_annealed",
               pyro=lambda bk, warmup=3: bk.infer.Trace_ELBO(vectorize_particles=True,
                                                             max_plate_nesting=1),
               numpyro=lambda bk, warmup=3: bk.infer.Trace_ELBO(),
               schedule=lambda warmup=3: objectives.KLSchedule(beta=2.0, warmup=warmup))
    res = quick_fit(make_vae("pyro"), small.train, objective="test_annealed", warmup=2, epochs=3)
    assert res.history["kl_weight"] == [1.0, 2.0, 2.0]


def test_user_objective_by_kind_trains_on_both_backends(backend, registered, small, make_vae,
                                                       quick_fit):
    """Registered by kind, an objective is built by each backend: no library code needed."""
    obj = registered("test_renyi_half", "renyi", options={"num_particles": 3},
                     fixed={"alpha": 0.5}, doc="Renyi 1/2")
    assert obj.options() == ("num_particles",) and not obj.enumerates
    elbo, _ = objectives.build("test_renyi_half", pv.backends.get(backend))
    assert type(elbo).__name__ == "RenyiELBO" and elbo.alpha == 0.5 and elbo.num_particles == 3
    res = quick_fit(make_vae(backend), small.train, objective="test_renyi_half", epochs=1)
    assert res.objective == "test_renyi_half" and np.all(np.isfinite(res.history["train_loss"]))
    with pytest.raises(TypeError, match="alpha"):       # fixed by the name, not an option
        pv.fit(make_vae(backend), small.train, objective="test_renyi_half", alpha=0.2,
               epochs=1, progress=False)


def test_each_backend_builds_every_kind_with_explicit_defaults():
    from probvae.backends.base import OBJECTIVE_KINDS
    for name in pv.backends.names():
        bk = pv.backends.get(name)
        for kind in OBJECTIVE_KINDS:
            elbo = bk.objective(kind, num_particles=2)
            assert elbo.num_particles == 2 and elbo.vectorize_particles is True, (name, kind)
        with pytest.raises(ValueError, match="unknown objective kind 'vimco'.*elbo"):
            bk.objective("vimco")


def test_register_checks_its_arguments(registered):
    with pytest.raises(ValueError, match="kind= .* or by pyro=/numpyro="):
        objectives.register("test_bad")
    with pytest.raises(ValueError, match="not both"):
        objectives.register("test_bad", "elbo", pyro=lambda bk: bk.infer.Trace_ELBO())
    with pytest.raises(ValueError, match="unknown objective kind 'vimco'; kinds: elbo"):
        objectives.register("test_bad", "vimco")
    with pytest.raises(ValueError, match="takes \\['alpha'\\]"):
        objectives.register("test_bad", "elbo", options={"alpha": 0.5})
    with pytest.raises(ValueError, match="options differ"):
        objectives.register("test_bad", pyro=lambda bk, num_particles=2: None,
                            numpyro=lambda bk, num_particles=3: None)
    with pytest.raises(TypeError, match="need defaults"):
        objectives.register("test_bad", pyro=lambda bk, num_particles: None)
    assert "test_bad" not in objectives.names()


def test_a_factory_for_one_backend_names_the_other(registered):
    registered("test_numpyro_only", numpyro=lambda bk: bk.infer.Trace_ELBO())
    objectives.build("test_numpyro_only", pv.backends.get("numpyro"))
    with pytest.raises(ValueError, match="no pyro factory"):
        objectives.build("test_numpyro_only", pv.backends.get("pyro"))


def test_register_refuses_duplicates_unless_overwrite(registered):
    make = dict(pyro=lambda bk: bk.infer.Trace_ELBO(), numpyro=lambda bk: bk.infer.Trace_ELBO())
    registered("test_dup", **make)
    with pytest.raises(ValueError, match="already registered"):
        objectives.register("test_dup", **make)
    with pytest.raises(ValueError, match="already registered"):
        objectives.register("elbo", **make)
    new = objectives.register("test_dup", overwrite=True, doc="second", **make)
    assert objectives.get("test_dup") is new and new.doc == "second"


def test_objective_object_is_accepted(small, make_vae, quick_fit):
    res = quick_fit(make_vae("pyro"), small.train, objective=objectives.get("iwae"),
                    num_particles=2, epochs=1)
    assert res.objective == "iwae"


# ------------------------------------------------------------------ enumeration
def _mixture_data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(-2, 0.5, (32, 2)),
                           rng.normal(2, 0.5, (32, 2))]).astype(np.float32)


def _mixture_model(bk):
    """Two Gaussian clusters with a discrete assignment y per example, summed out by enum."""
    def model(x):
        w = bk.param("weights", np.full(2, 0.5, np.float32), constraint=bk.constraints.simplex)
        locs = bk.param("locs", np.array([[-1.0, -1.0], [1.0, 1.0]], np.float32))
        with bk.plate("data", x.shape[0]):
            y = bk.sample("y", bk.dist.Categorical(w), infer={"enumerate": "parallel"})
            bk.sample("x", bk.dist.Normal(locs[y], 0.5).to_event(1), obs=x)

    def guide(x):
        pass
    return model, guide


def test_enum_sums_out_a_discrete_latent_on_both_backends():
    x = _mixture_data()
    out = {}
    for backend in ("pyro", "numpyro"):
        bk = pv.backends.get(backend)
        res = pv.fit(_mixture_model(bk), x, backend=backend, objective="enum", epochs=5,
                     batch_size=64, lr=0.05, progress=False)
        loss = res.history["train_loss"]
        assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
        locs = res.params["locs"]                  # the same name on both backends
        assert np.all(locs[0] < -1.1) and np.all(locs[1] > 1.1)   # moved towards +-2
        out[backend] = (loss, locs)
    # full-batch, no sampled latents: both backends take the same deterministic Adam steps
    np.testing.assert_allclose(out["pyro"][0], out["numpyro"][0], rtol=1e-4)
    np.testing.assert_allclose(out["pyro"][1], out["numpyro"][1], atol=1e-3)


def test_the_models_plate_nesting_reaches_the_objective():
    bk = pv.backends.get("pyro")
    for name in ("elbo", "iwae", "enum"):       # Pyro's RenyiELBO adds its particle plate
        one = objectives.build(name, bk, max_plate_nesting=1)[0].max_plate_nesting
        assert objectives.build(name, bk, max_plate_nesting=2)[0].max_plate_nesting == one + 1
    elbo, _ = objectives.build("enum", pv.backends.get("numpyro"), max_plate_nesting=3)
    assert elbo.max_plate_nesting == 3
