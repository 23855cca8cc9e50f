"""Data synthesis: do synthetic digits from a semi-supervised VAE help a classifier with few labels?

For each label draw (5 labelled digits per class, the rest of the training digits unlabelled),
trains the M2 model (`pv.models.SSVAE`, as in examples/semi_supervised.py), draws class-
conditional synthetic digits with `pv.synthesize`, and trains the same logistic regression on

  * the 50 real labelled digits only,
  * the real digits plus one-pixel shifted copies (the augmentation a user would write by hand),
  * the real digits plus the synthetic ones,
  * the real digits plus both,
  * the synthetic digits only (does the generator alone carry the classes?),

printing test accuracy (mean and spread over the draws) for each, with M2's own classifier as
a reference row. Writes a grid of synthetic digits per class to --out.

    python examples/augmentation.py                  # NumPyro, 3 label draws, about a minute
    python examples/augmentation.py --draws 5 --synthetic 2000 --backend pyro
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import probvae as pv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from semi_supervised import DEFAULTS as M2_DEFAULTS, train_m2  # noqa: E402


def shifted(x, y, shape):
    """The images and their copies shifted one pixel up, down, left and right."""
    imgs = x.reshape(-1, *shape)
    out = [imgs]
    for axis, step in ((1, 1), (1, -1), (2, 1), (2, -1)):
        s = np.roll(imgs, step, axis=axis)
        edge = [slice(None)] * 3
        edge[axis] = 0 if step == 1 else -1
        s[tuple(edge)] = 0                       # no wrap-around
        out.append(s)
    return np.concatenate(out).reshape(-1, x.shape[1]), np.tile(y, len(out))


def accuracies(x_lab, y_lab, x_syn, y_syn, data):
    """Test accuracy of logistic regression on each training set."""
    x_sh, y_sh = shifted(x_lab, y_lab, data.image_shape)
    sets = {"real labelled only": (x_lab, y_lab),
            "real + shifted copies": (x_sh, y_sh),
            "real + synthetic (probvae)": (np.concatenate([x_lab, x_syn]),
                                           np.concatenate([y_lab, y_syn])),
            "real + shifted + synthetic": (np.concatenate([x_sh, x_syn]),
                                           np.concatenate([y_sh, y_syn])),
            "synthetic only": (x_syn, y_syn)}
    return {name: LogisticRegression(max_iter=3000).fit(x, y).score(data.test.x, data.test.y)
            for name, (x, y) in sets.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
    ap.add_argument("--labels", type=int, default=50, help="labelled examples in all")
    ap.add_argument("--synthetic", type=int, default=1000, help="synthetic digits per draw")
    ap.add_argument("--draws", type=int, default=3, help="label draws (seeds 0, 1, ...)")
    ap.add_argument("--epochs", type=int, default=M2_DEFAULTS["epochs"])
    ap.add_argument("--out", default=None,
                    help="folder for the pictures (default: runs/augmentation/BACKEND, one "
                         "folder per kind of run, so that no run replaces another's)")
    args = ap.parse_args()

    data = pv.data.load("digits", seed=0)
    k = data.num_classes
    if args.labels < k or args.labels % k:
        raise SystemExit(f"--labels must be a multiple of the {k} classes, got {args.labels}")
    table, x_syn = {}, None
    for seed in range(args.draws):
        t0 = time.perf_counter()
        lab = data.train.label_subset(n_per_class=args.labels // k, seed=seed)
        m2_args = argparse.Namespace(**{**M2_DEFAULTS, "backend": args.backend,
                                        "epochs": args.epochs, "seed": seed})
        res = train_m2(data, lab, m2_args, progress=False)
        x_syn, y_syn = pv.synthesize(res, args.synthetic, seed=seed)
        accs = accuracies(data.train.x[lab], data.train.y[lab], x_syn, y_syn, data)
        accs["M2's own classifier (reference)"] = float(
            (pv.predict(res, data.test).argmax(1) == data.test.y).mean())
        for name, value in accs.items():
            table.setdefault(name, []).append(value)
        print(f"draw {seed}: M2 trained and {args.synthetic} digits synthesized in "
              f"{time.perf_counter() - t0:.1f} s; " + ", ".join(f"{v:.3f}" for v in accs.values()))

    print(f"\nlogistic regression test accuracy, {args.labels} labels, mean ± sd over "
          f"{args.draws} label draws ({args.backend})")
    for name, values in table.items():
        print(f"  {name:<36} {np.mean(values):.3f} ± {np.std(values):.3f}")
    out = Path(args.out or Path("runs", "augmentation", args.backend))
    order = np.argsort(y_syn, kind="stable")
    per_class = np.concatenate([x_syn[order][y_syn[order] == c][:10] for c in range(k)])
    pv.plots.image_grid(per_class, data.image_shape, out / "synthetic.png", ncol=10,
                        row_labels=[str(c) for c in range(k)],
                        title="synthetic digits from pv.synthesize (a row per class)")
    print(f"wrote {out}/synthetic.png")


if __name__ == "__main__":
    main()
