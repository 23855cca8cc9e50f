"""The training config: one frozen TrainConfig per fit, from which the result's options,
checkpoint.json's "fit" and the compiled programs' key are derived, each as it was before the
config existed (old run folders resume, kept programs are found again)."""
import dataclasses
import json

import pytest

import probvae as pv
from probvae.inference import numpyro_loop, training
from probvae.inference.config import SETTINGS, TrainConfig, split_options
from probvae.inference.optimizers import Optimizer


def _legacy_cache_key(model_config, objective, objective_options, missing, binarize):
    """The NumPyro loop's cache key as fit built it before TrainConfig (and as the programs
    kept on disk are keyed): the model's config as checkpoint.json holds it (a JSON round
    trip, ``default=str``), then ``[model, objective name, objective options as given,
    missing, binarize]`` as sorted JSON with ``default=str``."""
    model = json.loads(json.dumps(model_config, default=str))
    return json.dumps([model, objective, objective_options, missing, binarize],
                      sort_keys=True, default=str)


def test_cache_key_is_byte_identical_to_the_legacy_recipe(make_vae):
    vae = make_vae("numpyro", likelihood="bernoulli", prior="vamp")
    config = TrainConfig("iwae", {"num_particles": 4}, epochs=3, batch_size=16, lr=2e-3,
                         seed=7, clip_norm=5.0, binarize="dynamic", model=vae.config())
    assert config.cache_key == _legacy_cache_key(vae.config(), "iwae", {"num_particles": 4},
                                                 None, "dynamic")
    # a user's pair is code: no key, so nothing compiled is kept for it
    assert dataclasses.replace(config, pair=True).cache_key is None


def test_fit_hands_the_loop_the_legacy_key(small, make_vae, monkeypatch):
    """The key fit passes to the NumPyro loop, end to end, for one VAE setting."""
    seen = []
    init = numpyro_loop.Loop.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs["cache_key"])
        init(self, *args, **kwargs)
    monkeypatch.setattr(numpyro_loop.Loop, "__init__", spy)
    vae = make_vae("numpyro")
    pv.fit(vae, small.train, objective="beta", beta=0.5, warmup=2, missing="mask", epochs=1,
           progress=False)
    assert seen == [_legacy_cache_key(vae.config(), "beta", {"beta": 0.5, "warmup": 2},
                                      "mask", None)]


def test_options_fit_meta_and_config_json_come_from_the_config(small, make_vae, tmp_path):
    res = pv.fit(make_vae("pyro"), small.train, objective="iwae", num_particles=2, epochs=1,
                 clip_norm=3.0, validation=small.valid, patience=2, progress=False,
                 checkpoint=tmp_path / "run")
    # the order and fields every earlier version wrote, then what trained it (issue 37)
    assert list(res.options) == ["num_particles", "epochs", "batch_size", "lr", "seed",
                                 "patience", "missing", "clip_norm", "processes", "devices"]
    assert res.options == {"num_particles": 2, "epochs": 1, "batch_size": 128, "lr": 1e-3,
                           "seed": 0, "patience": 2, "missing": None, "clip_norm": 3.0,
                           "processes": 1, "devices": 1}
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["options"] == res.options and saved["objective"] == "iwae"
    assert saved["seed"] == 0 and saved["model"] == json.loads(json.dumps(res.model.config()))
    fit_meta = res.training_state.meta["fit"]
    assert sorted(fit_meta) == sorted(["objective", "objective_options", "batch_size", "seed",
                                       "missing", "binarize", "model", "data", "validation",
                                       "epochs", "lr", "clip_norm", "patience"])
    assert fit_meta["objective_options"] == {"num_particles": 2}
    assert set(fit_meta) - set(training._CHANGEABLE) >= set(training._FIT_FIELDS)


def test_options_hold_the_optional_settings_only_when_set():
    bare = TrainConfig("elbo")
    assert list(bare.options) == ["epochs", "batch_size", "lr", "seed", "patience", "missing",
                                  "processes", "devices"]
    full = TrainConfig("enum", {"num_particles": 2}, binarize="dynamic", clip_norm=1.0,
                       num_labelled=10, holdout=30, optimizer=Optimizer("sgd"))
    assert list(full.options) == ["num_particles", *SETTINGS, "processes", "devices"]


def test_split_options_inverts_options():
    config = TrainConfig("renyi", {"alpha": 0.3}, epochs=4, clip_norm=2.0, num_labelled=5)
    settings, objective_options = split_options(config.options)
    assert objective_options == {"alpha": 0.3}
    assert settings == {k: config.recorded(k) for k in SETTINGS}


def test_config_and_run_are_frozen():
    config = TrainConfig("elbo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        training.Run().every = 2
    assert training.Run(state=object()).resuming and not training.Run().resuming


def test_each_backend_names_its_loop():
    import importlib
    for name in pv.backends.names():
        bk = pv.backends.get(name)
        assert importlib.import_module(bk.loop_module).Loop.__module__ == bk.loop_module


def test_a_users_objective_by_kind_keys_its_definition(make_vae):
    """Registered again under the same name with other settings, a user's objective gets
    other compiled programs; probvae's own objectives keep the legacy key."""
    from probvae.inference import objectives
    model = make_vae("numpyro").config()
    try:
        first = objectives.register("test_key_renyi", "renyi", fixed={"alpha": 0.5})
        second = objectives.register("test_key_renyi", "renyi", fixed={"alpha": 0.2},
                                     overwrite=True)
        keys = [TrainConfig("test_key_renyi", model=model,
                            objective_definition=objectives.definition(o)).cache_key
                for o in (first, second)]
        assert keys[0] != keys[1]
        assert keys[0].startswith(_legacy_cache_key(model, "test_key_renyi", {}, None, None)[:-1])
    finally:
        objectives._REGISTRY.pop("test_key_renyi", None)
    assert objectives.definition("iwae") is None
