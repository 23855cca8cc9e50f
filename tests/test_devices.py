"""Several devices: NumPyro's batches split across JAX devices (forced CPU devices in a
subprocess), Pyro's across torchrun processes (gloo on CPU; -m slow)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import probvae as pv

ROOT = Path(__file__).resolve().parents[1]

SHARDED = r"""
import json, sys, jax, numpy as np, probvae as pv
from probvae.inference import numpyro_loop
d = pv.data.load("digits", seed=0)
out = {"devices": len(jax.devices())}
for n in (1, 4):
    vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(32,))
    res = pv.fit(vae, d.train, validation=d.valid, epochs=3, batch_size=64, devices=n,
                 objective="iwae", num_particles=4, progress=False)
    out[n] = {"train": res.history["train_loss"], "valid": res.history["valid_loss"],
              "w": [float(np.asarray(v).sum()) for v in jax.tree_util.tree_leaves(res.param_state)
                    if hasattr(v, "shape")]}
# the epoch compiled for 4 devices sums gradients across them (an all-reduce in its program)
loop = numpyro_loop.Loop(vae.build(0), {"x": d.train.x}, None, *__import__(
    "probvae.inference.objectives", fromlist=["build"]).build("elbo", vae.bk, max_plate_nesting=1),
    batch_size=64, lr=1e-3, seed=0, devices=4)
hlo = loop._epoch_fn.lower(loop.svi_state, jax.random.PRNGKey(0), np.int32(0), loop.data, {}, None)
out["all_reduce"] = "all-reduce" in hlo.compile().as_text()
try:
    pv.fit(vae, d.train, epochs=1, batch_size=30, devices=4, progress=False)
except ValueError as err:
    out["uneven"] = str(err)
# scoring: the units dealt over the 4 devices, then all on one (inference/sharding.py)
from probvae.inference import sharding
x = np.where(np.arange(64) % 3 == 0, np.nan, d.test.x[:40])
def scores():
    ev = pv.evaluate(res, d.test, num_samples=300, seed=3)
    lw = pv.inference.log_weights(res, d.test.x[:50], num_samples=250, seed=1, keep=("z",),
                                  common_noise=True)
    return {"eval": [ev[k] for k in ("elbo", "log_likelihood", "kl")],
            "lw": {k: np.asarray(v).tolist() for k, v in lw.items()}}
out["workers"] = len(sharding.workers(res.bk, res.param_state).devices)
out["sharded"] = scores()
one = sharding.workers
sharding.workers = lambda bk, params: sharding.Workers(0, 1, (jax.devices()[0],))
out["one_device"] = scores()
print(json.dumps(out))
"""


def _run(code, env_extra, timeout=300):
    env = dict(os.environ, **env_extra)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_numpyro_on_four_devices_matches_one():
    out = _run(SHARDED, {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert out["devices"] == 4 and out["all_reduce"]
    one, four = out["1"], out["4"]
    np.testing.assert_allclose(four["train"], one["train"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(four["valid"], one["valid"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(four["w"], one["w"], rtol=1e-3, atol=1e-3)   # the parameters
    assert "does not split evenly across 4 devices" in out["uneven"]
    # scoring dealt over the 4 devices gives one device's numbers, bit for bit
    assert out["workers"] == 4
    assert out["sharded"] == out["one_device"]


def test_device_errors_name_the_fix(small):
    vae = pv.models.VAE(input_dim=small.train.x.shape[1], latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        pv.fit(vae, small.train, epochs=1, devices=64, progress=False)
    with pytest.raises(ValueError, match="devices must be >= 1"):
        pv.fit(vae, small.train, epochs=1, devices=0, progress=False)
    res = pv.fit(vae, small.train, epochs=1, devices=1, progress=False)   # one: as without
    assert res.status == "completed"
    pyro_vae = pv.models.VAE(input_dim=small.train.x.shape[1], latent_dim=2, hidden=(8,),
                             backend="pyro")
    with pytest.raises(ValueError, match="torchrun"):
        pv.fit(pyro_vae, small.train, epochs=1, devices=2, progress=False)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_device_cpu_is_the_cpu_run_and_the_result_lives_on_the_cpu(backend, digits, tmp_path):
    """device="cpu" runs the placement path (torch's default-device context and the moves of
    networks and parameters on Pyro; jax.default_device on NumPyro) and gives the same numbers
    as the automatic choice on this CPU-only machine, with dynamic binarization and labels
    (the CPU generators) in play; the fitted model is on the CPU and saves as NumPy."""
    data = pv.data.from_arrays(digits.train.x[:96], digits.train.y[:96])
    lab = data.label_subset(n_per_class=1, seed=0)
    runs = {}
    for device in (None, "cpu"):
        ss = pv.models.SSVAE(input_dim=data.x.shape[1], num_classes=10,
                             latent_dim=2, hidden=(8,), likelihood="bernoulli", backend=backend)
        runs[device] = pv.fit(ss, data, labels=lab, epochs=2, batch_size=32, seed=0,
                              binarize="dynamic", device=device, progress=False)
    np.testing.assert_allclose(runs["cpu"].history["train_loss"],
                               runs[None].history["train_loss"], rtol=1e-6)
    res = runs["cpu"]
    if backend == "pyro":
        import torch
        tensors = list(res.param_state["params"].values()) + list(res.param_state["values"].values()) + [
            p for net in res.model.nets.values() if isinstance(net, torch.nn.Module)
            for p in net.parameters()]
        assert tensors and all(t.device.type == "cpu" for t in tensors)
    x = data.binarize(stochastic=True, seed=0).x[:5]
    loaded = pv.load(pv.save(res, tmp_path / "m"))
    np.testing.assert_allclose(pv.predict(loaded, x), pv.predict(res, x), atol=1e-6)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_device_gpu_without_one_names_the_install(backend, small):
    vae = pv.models.VAE(input_dim=small.train.x.shape[1], latent_dim=2, hidden=(8,),
                        backend=backend)
    if vae.bk.has_gpu():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="sees no GPU.*CUDA build"):
        pv.fit(vae, small.train, epochs=1, device="gpu", progress=False)
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        pv.fit(vae, small.train, epochs=1, device="cuda:0", progress=False)


WORKER = r"""
import json, os, sys, numpy as np, probvae as pv
from probvae.inference import distributed
out_dir, resume = sys.argv[1], sys.argv[2] == "resume"
d = pv.data.load("digits", seed=0)
vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(32,), backend="pyro")
res = pv.fit(vae, d.train, validation=d.valid, epochs=4 if resume else 2, batch_size=64,
             seed=0, progress=False, checkpoint=os.path.join(out_dir, "run"),
             resume=os.path.join(out_dir, "run") if resume else None)
rank = distributed.world()[0]
np.savez(os.path.join(out_dir, f"params_rank{rank}.npz"),
         **{k: v.detach().numpy() for k, v in res.param_state["params"].items()})
if rank == 0:
    print(json.dumps({"train": res.history["train_loss"], "valid": res.history["valid_loss"]}))
distributed.finish()
"""


def _torchrun(n, out_dir, mode):
    script = Path(out_dir) / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={n}", str(script), str(out_dir), mode]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_pyro_on_two_processes_stays_in_sync_and_resumes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    single = _torchrun(1, one, "new")
    double = _torchrun(2, two, "new")
    a, b = np.load(two / "params_rank0.npz"), np.load(two / "params_rank1.npz")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)   # in sync
    # the same global batches; the z draws differ (each process draws for its share), so
    # the losses agree to Monte Carlo noise, not to the bit
    np.testing.assert_allclose(double["train"], single["train"], rtol=0.05)
    np.testing.assert_allclose(double["valid"], single["valid"], rtol=0.05)
    written = sorted(p.name for p in (two / "run").iterdir())
    assert "checkpoint.json" in written and "params.npz" in written
    resumed = _torchrun(2, two, "resume")                     # every rank reads the checkpoint
    assert len(resumed["train"]) == 4 and resumed["train"][:2] == double["train"]
    a, b = np.load(two / "params_rank0.npz"), np.load(two / "params_rank1.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_cli_under_torchrun_writes_once(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "probvae", "train", "--backend", "pyro", "--epochs", "2", "--batch-size", "64",
           "--hidden", "16", "--latent-dim", "2", "--eval-samples", "5", "--no-progress",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1 and proc.stdout.count("training VAE") == 1
    assert (out / "params.npz").exists() and (out / "metrics.json").exists()


def test_pyro_placement_on_the_cpu_adds_no_per_call_hook():
    """On the CPU the placement enters no torch function mode (it would run Python on every
    torch call of every step); with another default device it still puts tensors on the CPU."""
    import torch
    from torch.overrides import _get_current_function_mode_stack

    from probvae.backends.pyro_backend import PyroBackend
    with PyroBackend.placement("cpu"):
        assert _get_current_function_mode_stack() == []
        assert torch.zeros(2).device.type == "cpu"
    torch.set_default_device("meta")
    try:
        with PyroBackend.placement("cpu"):
            assert torch.zeros(2).device.type == "cpu"
        assert torch.zeros(2).device.type == "meta"
    finally:
        torch.set_default_device(None)          # None, not "cpu": "cpu" would leave a mode
    assert _get_current_function_mode_stack() == []
