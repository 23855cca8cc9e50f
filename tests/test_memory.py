"""Sizes a user's number sets are checked against this machine's memory before anything is
allocated: a huge ``n`` or ``num_samples`` is refused at once, naming the setting and a way
round, instead of growing until the kernel kills the process."""
import re
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import probvae as pv
from probvae import memory
from probvae.memory import TooLargeError, check_allocation

HUGE = 10**9
#: seconds a refusal may take (it is immediate: no network runs, nothing is allocated)
PROMPT = 5.0


@pytest.fixture(scope="module")
def tiny():
    """``tiny(backend)``: VAE(64 -> 2, hidden 8) trained one epoch on 64 digits."""
    x = pv.data.load("digits", seed=0).train.x[:64]
    cache = {}

    def get(backend):
        if backend not in cache:
            vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend=backend)
            cache[backend] = pv.fit(vae, x, epochs=1, batch_size=32, progress=False)
        return cache[backend], x
    return get


def refused(call, setting):
    """Run ``call``; it must raise TooLargeError naming ``setting``, promptly. The message."""
    t0 = time.perf_counter()
    with pytest.raises(TooLargeError) as info:
        call()
    assert time.perf_counter() - t0 < PROMPT
    text = str(info.value)
    assert setting in text and "available on this machine" in text
    return text


# -- check_allocation itself -------------------------------------------------------------------

def test_check_allocation_refuses_more_than_half_of_available(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    assert check_allocation(500, "n=5", "a smaller n") == 500
    with pytest.raises(TooLargeError) as info:
        check_allocation(600, "n=6", lambda budget: f"n <= {budget // 100}", what="pv.sample",
                         detail="n x 100 bytes")
    err = info.value
    assert isinstance(err, MemoryError) and isinstance(err, ValueError)
    assert str(err) == ("pv.sample: n=6 needs about 600 B of memory (n x 100 bytes), more than "
                        "half of the 1000 B available on this machine; n <= 5")


def test_check_allocation_passes_when_memory_cannot_be_read(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 0)
    assert check_allocation(2**70, "n=1", "a smaller n") == 2**70


def test_available_bytes_takes_the_smaller_of_meminfo_and_the_cgroup_limit(monkeypatch):
    assert memory.available_bytes() > 0
    files = {"/sys/fs/cgroup/memory.max": 3 * 2**20, "/sys/fs/cgroup/memory.current": 2**20}
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 2**40)
    monkeypatch.setattr(memory, "_read_int", files.get)
    assert memory.available_bytes() == 2 * 2**20
    files["/sys/fs/cgroup/memory.max"] = None                 # "max": no limit
    assert memory.available_bytes() == 2**40


def test_round_down_and_format_bytes():
    assert [memory.round_down(v) for v in (0, 9, 10, 163_840, 5_999)] == [1, 9, 10, 100_000, 5_000]
    assert memory.format_bytes(2**30) == "1.0 GiB" and memory.format_bytes(2**60) == "1024.0 PiB"


# -- every call whose size a user's number sets ------------------------------------------------

def test_sample_refuses_a_huge_n(backend, tiny):
    res, _ = tiny(backend)
    text = refused(lambda: pv.sample(res, n=HUGE), f"n={HUGE}")
    assert "pv.sample" in text and "draw in chunks" in text


def test_synthesize_refuses_a_huge_n(backend, tiny):
    res, _ = tiny(backend)
    assert "pv.synthesize" in refused(lambda: pv.synthesize(res, HUGE), f"n={HUGE}")


def test_synthesize_refuses_a_huge_n_for_a_table():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.normal(size=40), "group": rng.choice(["a", "b"], 40)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pv.data.from_frame(frame, seed=0)
    res = pv.fit(pv.models.VAE.for_table(table, latent_dim=2, hidden=(8,)), table.train,
                 epochs=1, progress=False)
    refused(lambda: pv.synthesize(res, HUGE), f"n={HUGE}")
    assert len(pv.synthesize(res, 5)) == 5


def test_decode_and_interpolate_refuse_huge_sizes(tiny):
    res, x = tiny("numpyro")
    z = np.broadcast_to(np.zeros(2, np.float32), (HUGE, 2))     # a view: no memory of its own
    refused(lambda: pv.decode(res, z), f"len(z)={HUGE}")
    refused(lambda: pv.interpolate(res, x[0], x[1], steps=HUGE), f"steps={HUGE}")


def test_evaluate_refuses_a_huge_num_samples(backend, tiny):
    res, x = tiny(backend)
    text = refused(lambda: pv.evaluate(res, x[:4], num_samples=HUGE), f"num_samples={HUGE}")
    assert "pv.evaluate" in text and "a smaller num_samples, e.g. num_samples=" in text


def test_log_weights_refuses_what_it_would_keep(backend, tiny, monkeypatch):
    res, x = tiny(backend)
    refused(lambda: pv.inference.log_weights(res, x, num_samples=HUGE), f"num_samples={HUGE}")
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**30)
    # 64 examples x 10**6 draws keep 4 float64 arrays: 2 GB, twice while concatenated
    text = refused(lambda: pv.inference.log_weights(res, x, num_samples=10**6),
                   "num_samples=1000000")
    assert "(64 examples x 1000000 draws)" in text
    smaller = int(re.search(r"e\.g\. num_samples=(\d+)", text).group(1))
    rows = int(re.search(r"or the 64 examples in parts \(x\[:(\d+)\], \.\.\.\)", text).group(1))
    assert 10**4 <= smaller < 10**6 and 1 <= rows < 64
    check = pv.inference.scoring.check_samples                  # both ways round fit
    assert check(res.model, 64, smaller) == smaller and check(res.model, rows, 10**6) == 10**6


def test_latent_posterior_refuses_a_huge_num_samples(backend, tiny):
    res, x = tiny(backend)
    refused(lambda: pv.diagnostics.latent_posterior(res, x[:4], num_samples=HUGE),
            f"num_samples={HUGE}")


def test_impute_refuses_a_huge_num_samples_or_multiple(backend, tiny):
    res, x = tiny(backend)
    gaps = x[:4].copy()
    gaps[0, 0] = np.nan
    refused(lambda: pv.impute(res, gaps, num_samples=HUGE), f"num_samples={HUGE}")
    text = refused(lambda: pv.impute(res, gaps, num_samples=10, multiple=10**13),
                   "multiple=10000000000000")
    assert "fewer imputations" in text


def test_predict_by_the_model_refuses_a_huge_num_samples(digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,))
    x = digits.train
    res = pv.fit(ss, x, labels=x.label_subset(n_per_class=1), objective="enum", epochs=1,
                 batch_size=256, progress=False)
    refused(lambda: pv.predict(res, x.x[:4], method="model", num_samples=HUGE),
            f"num_samples={HUGE}")
    refused(lambda: pv.synthesize(res, HUGE), f"n={HUGE}")
    assert pv.predict(res, x.x[:3], method="model", num_samples=5).shape == (3, 10)


def test_ordinary_sizes_still_run(backend, tiny):
    res, x = tiny(backend)
    assert pv.sample(res, n=16).shape == (16, 64)
    assert pv.synthesize(res, 10).shape == (10, 64)
    assert pv.decode(res, np.zeros((3, 2))).shape == (3, 64)
    assert pv.evaluate(res, x[:8], num_samples=10)["num_examples"] == 8
    idata = pv.diagnostics.latent_posterior(res, x[:4], num_samples=20)
    assert idata.posterior["z"].shape == (1, 20, 4, 2)      # one chain of 20 draws from q
    gaps = x[:4].copy()
    gaps[0, 0] = np.nan
    assert pv.impute(res, gaps, num_samples=10, multiple=2).shape == (2, 4, 64)
