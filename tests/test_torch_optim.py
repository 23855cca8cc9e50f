"""JointAdam (one fused torch Adam over all of a Pyro model's parameters): the same training
as Pyro's per-parameter Adam, and checkpoints that move between the two."""
import numpy as np
import pyro
import pytest
import torch

import probvae as pv
from probvae.backends.pyro_backend import PyroBackend
from probvae.backends.torch_optim import JointAdam


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    pyro.clear_param_store()
    store = pyro.get_param_store()
    for name, shape in (("a", (3, 4)), ("b", (4,)), ("c", (2,))):
        pyro.param(name, torch.randn(shape, generator=g))
    return store


def _steps(optim, n, g):
    """``n`` steps of ``optim`` on the store's parameters with gradients drawn from ``g``."""
    store = pyro.get_param_store()
    for _ in range(n):
        params = [store.get_param(k).unconstrained() for k in sorted(store.keys())]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        optim(params)
    return {k: store.get_param(k).detach().clone() for k in store.keys()}


def _pyro_adam():
    return pyro.optim.Adam({"lr": 0.05, "fused": True})


def test_joint_adam_steps_as_pyros_adam_and_their_states_swap():
    _params(0)
    ref = _steps(_pyro_adam(), 5, torch.Generator().manual_seed(1))
    _params(0)
    got = _steps(JointAdam(0.05), 5, torch.Generator().manual_seed(1))
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)
    for first, second in ((_pyro_adam(), JointAdam(0.05)), (JointAdam(0.05), _pyro_adam())):
        _params(0)
        g = torch.Generator().manual_seed(1)
        values = _steps(first, 3, g)            # 3 steps, then a checkpoint ...
        saved = first.get_state()
        assert set(saved) == {"a", "b", "c"}
        pyro.clear_param_store()                # ... restored in a new process
        for k, v in values.items():
            pyro.param(k, v.clone())
        second.set_state(saved)
        cont = _steps(second, 2, g)             # and 2 more steps: as 5 in one go
        for k in ref:
            torch.testing.assert_close(cont[k], ref[k], rtol=1e-6, atol=1e-7)


def test_pyro_fit_trains_as_with_pyros_adam(monkeypatch):
    assert isinstance(PyroBackend.adam(1e-3), JointAdam)        # what fit uses on Pyro
    x = pv.data.load("digits", seed=0).train.x[:128]
    runs = []
    for adam in (PyroBackend.adam, lambda lr: pyro.optim.Adam({"lr": lr, "fused": True})):
        monkeypatch.setattr(PyroBackend, "adam", staticmethod(adam))
        vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend="pyro")
        runs.append(pv.fit(vae, x, epochs=2, batch_size=32, seed=0, progress=False))
    np.testing.assert_allclose(runs[0].history["train_loss"], runs[1].history["train_loss"],
                               rtol=1e-6)


def test_an_unseen_parameter_joins_later():
    store = _params(0)
    opt = JointAdam(0.1)
    a = store.get_param("a").unconstrained()
    a.grad = torch.ones_like(a)
    opt([a])
    b = store.get_param("b").unconstrained()
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    before = b.detach().clone()
    opt([a, b])
    assert not torch.equal(b.detach(), before)
    assert set(opt.get_state()) == {"a", "b"}
    with pytest.raises(TypeError):
        JointAdam()
