"""The example scripts run end to end (few epochs) and print their tables and write their pictures."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: script (a variant: "script[variant]"), quick arguments, text its table must print, pictures
#: it must write
CASES = {
    "generation": (["--epochs", "2", "--n", "200"],
                   ["digit score", "Gaussian mixture", "probabilistic PCA"],
                   ["samples.png", "interpolation.png", "traversal.png"]),
    "augmentation": (["--epochs", "2", "--draws", "1", "--synthetic", "100"],
                     ["real labelled only", "real + synthetic (probvae)", "M2's own classifier"],
                     ["synthetic.png"]),
    "anomaly_detection": (["--epochs", "2", "--classes", "0", "8", "--num-samples", "10"],
                          ["AUROC", "IsolationForest", "OneClassSVM", "PCA reconstruction", "mean"],
                          ["most_anomalous.png"]),
    "transfer": (["--epochs", "2", "--draws", "2", "--per-class", "1", "5"],
                 ["raw pixels", "PCA", "VAE"],
                 ["accuracy_vs_labels.png"]),
    "latent_space": (["--epochs", "2"],
                     ["5-NN accuracy", "Isomap", "active units"],
                     ["latent_map.png", "manifold.png", "traversal_beta1.png"]),
    "semi_supervised": (["--epochs", "2"],
                        ["Bayes rule p(y|x)", "its classifier q(y|x)", "LabelSpreading"],
                        ["conditional_samples.png", "style_transfer.png", "learning_curves.png",
                         "model/config.json"]),
    # the auxiliary-variable model, a conv encoder, Bernoulli pixels binarized each epoch
    "semi_supervised[sdgm]": (["--epochs", "2", "--model", "sdgm", "--encoder", "conv",
                               "--likelihood", "bernoulli", "--binarize"],
                              ["SDGM, Bayes rule p(y|x)", "SDGM, its classifier q(y|x)"],
                              ["conditional_samples.png", "style_transfer.png"]),
    # M1+M2: a VAE first, the semi-supervised model on its codes, pictures decoded by M1
    "semi_supervised[stack]": (["--epochs", "2", "--stack", "--m1-epochs", "2"],
                               ["M1+M2, Bayes rule p(y|x)", "M1+M2, its classifier q(y|x)"],
                               ["conditional_samples.png", "style_transfer.png"]),
    "diagnostics": (["--epochs", "2", "--n", "10", "--nuts-digits", "1",
                     "--compare-samples", "10"],
                    ["normal", "vamp", "k-hat", "paired se", "posterior predictive check"],
                    ["khat.png", "forest_vamp_digit0.png", "compare.png", "ppc.png"]),
    "custom_model": (["--epochs", "2"], ["pyro", "numpyro", "IWAE log-likelihood"], None),
    "tabular": (["--epochs", "5"], ["from_frame: ", "pv.impute", "IterativeImputer",
                                   "species share", "AUROC"], None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name, tmp_path):
    args, texts, pictures = CASES[name]
    env = dict(os.environ, MPLBACKEND="Agg")
    script = ROOT / "examples" / f"{name.split('[')[0]}.py"
    proc = subprocess.run([sys.executable, str(script), *args],     # no --out: the default
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in texts:
        assert text in proc.stdout, f"{name} did not print {text!r}:\n{proc.stdout[-2000:]}"
    out = tmp_path / "runs" / default_folder(name, args)
    for picture in pictures or ():
        assert (out / picture).stat().st_size > 0
    if pictures:                       # one folder per kind of run: nothing else written
        assert [p.relative_to(tmp_path / "runs") for p in (tmp_path / "runs").glob("*/*")] == \
            [default_folder(name, args)]


def default_folder(name, args):
    """Where an example writes without --out: its name, then the backend (and for the
    semi-supervised example the model and data set), so that runs of another kind (``--backend
    pyro``) never replace its pictures."""
    script = name.split("[")[0]
    if script == "semi_supervised":
        model = args[args.index("--model") + 1] if "--model" in args else "m2"
        return Path(script, f"{model}{'-stack' if '--stack' in args else ''}-digits-numpyro")
    return Path(script, "numpyro")
