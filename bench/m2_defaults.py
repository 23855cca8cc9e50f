"""M2 with the library's defaults only: what a new user gets on digits with 50 labels.

``pv.models.SSVAE(input_dim=64, num_classes=10)`` and ``pv.fit(ss, data.train, labels=lab)``
(objective, epochs and batch size from the model's defaults), over five label draws (5 per
class); test accuracy of the classifier q(y|x) and of Bayes' rule p(y|x). Compare with
LabelSpreading in ``bench/semi_supervised.py`` (0.926 ± 0.017 on the same draws).

    .venv/bin/python bench/m2_defaults.py          # about 2 minutes (NumPyro)
"""
import warnings
import numpy as np
import probvae as pv
warnings.simplefilter("ignore")
data = pv.data.load("digits", seed=0)
q, p = [], []
for draw in range(5):
    lab = data.train.label_subset(n_per_class=5, seed=draw)
    ss = pv.models.SSVAE(input_dim=64, num_classes=10)
    res = pv.fit(ss, data.train, labels=lab, seed=draw, progress=False)
    q.append(float((pv.predict(res, data.test).argmax(1) == data.test.y).mean()))
    p.append(float((pv.predict(res, data.test, method="model", num_samples=50, seed=draw).argmax(1) == data.test.y).mean()))
    print(draw, q[-1], p[-1], flush=True)
print("defaults, test: q %.3f ± %.3f, p %.3f ± %.3f" % (np.mean(q), np.std(q), np.mean(p), np.std(p)))
