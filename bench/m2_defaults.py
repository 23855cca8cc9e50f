"""M2 with the library's defaults only: what a new user gets on digits with 50 labels.

``pv.models.SSVAE(input_dim=64, num_classes=10)`` and ``pv.fit(ss, data.train, labels=lab)``
(objective, epochs and batch size from the model's defaults), over five label draws (5 per
class); test accuracy of the classifier q(y|x) and of Bayes' rule p(y|x), beside scikit-learn's
LabelSpreading and logistic regression on the same labels, per draw. The defaults were chosen on
the validation split with other label draws (``bench/m2_tune.py``).

    .venv/bin/python bench/m2_defaults.py                    # NumPyro, about 5 minutes
    .venv/bin/python bench/m2_defaults.py --backend pyro
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import probvae as pv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from semi_supervised import baselines  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
ap.add_argument("--draws", type=int, default=5)
args = ap.parse_args()
warnings.simplefilter("ignore")
data = pv.data.load("digits", seed=0)
rows = []
print(f"M2 with the library's defaults, digits, 50 labels, backend {args.backend}, test accuracy")
print(f"{'draw':>4} {'q(y|x)':>7} {'p(y|x)':>7} {'LabelSpreading':>15} {'logreg':>7} {'fit s':>6}")
for draw in range(args.draws):
    lab = data.train.label_subset(n_per_class=5, seed=draw)
    unlab = np.setdiff1d(np.arange(len(data.train)), lab)
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, backend=args.backend)
    t0 = time.perf_counter()
    res = pv.fit(ss, data.train, labels=lab, seed=draw, progress=False)
    secs = time.perf_counter() - t0
    q = float((pv.predict(res, data.test).argmax(1) == data.test.y).mean())
    p = float((pv.predict(res, data.test, method="model", num_samples=50, seed=draw).argmax(1)
               == data.test.y).mean())
    base = baselines(data.train.x[lab], data.train.y[lab], data.train.x[unlab], data.test.x,
                     data.test.y, draw)
    ls, lr = base["LabelSpreading (scikit-learn, kNN)"], base["supervised-only logistic regression"]
    rows.append((q, p, ls, lr))
    print(f"{draw:>4} {q:>7.3f} {p:>7.3f} {ls:>15.3f} {lr:>7.3f} {secs:>6.1f}", flush=True)
q, p, ls, lr = np.array(rows).T
print(f"mean {q.mean():.3f} ± {q.std():.3f} (q), {p.mean():.3f} ± {p.std():.3f} (p); "
      f"LabelSpreading {ls.mean():.3f} ± {ls.std():.3f}; logreg {lr.mean():.3f}")
print(f"draws at or above LabelSpreading: p(y|x) {(p >= ls).sum()}/{len(p)}, "
      f"q(y|x) {(q >= ls).sum()}/{len(q)}")
