"""A process that fits model after model stays under the kernel's limit on memory maps: the
caches of compiled NumPyro programs let their oldest go when the maps pass
``compiling.MAP_BUDGET`` of the limit (each XLA CPU program maps its code in many pieces; past
``vm.max_map_count`` the next compile fails in LLVM and the process crashes)."""
import os
import subprocess
import sys

import pytest

from probvae.memory import maps_in_use

pytestmark = pytest.mark.skipif(maps_in_use() is None, reason="needs Linux's /proc")

CODE = """
import sys, warnings
import numpy as np
import probvae as pv
from probvae.inference import compiling, numpyro_loop, scoring
from probvae.memory import maps_in_use
compiling.MAP_BUDGET = float(sys.argv[1])
warnings.simplefilter("ignore")
x = (np.random.default_rng(0).random((64, 12)) > 0.5).astype(np.float32)
for latent in (2, 3, 4):
    vae = pv.models.VAE(input_dim=12, latent_dim=latent, hidden=(8,), backend="numpyro")
    res = pv.fit(vae, x, epochs=1, validation=None, progress=False)
    pv.evaluate(res, x, num_samples=2)
print(len(numpyro_loop._COMPILED), len(scoring._FUNCTIONS), maps_in_use()[0])
"""


def _run(budget):
    out = subprocess.run([sys.executable, "-c", CODE, str(budget)], capture_output=True,
                         text=True, env={**os.environ, "PROBVAE_COMPILATION_CACHE": "0"})
    assert out.returncode == 0, out.stderr[-3000:]
    return [int(v) for v in out.stdout.split()]


def test_programs_go_when_the_maps_pass_the_budget_and_stay_below_it():
    kept, functions, maps = _run(0.5)            # the default: far below the limit here
    assert (kept, functions) == (3, 3)
    kept0, functions0, maps0 = _run(0.0)         # always over: only the newest stays
    assert (kept0, functions0) == (1, 1)
    assert maps0 < 0.8 * maps, (maps0, maps)     # and letting them go gave the maps back


def test_maps_in_use_reads_this_process():
    used, limit = maps_in_use()
    assert 0 < used < limit
