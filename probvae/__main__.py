"""``python -m probvae ...`` is the ``probvae`` command; it lets ``torchrun`` launch it::

    torchrun --nproc_per_node=2 -m probvae train --backend pyro --out runs/ddp

Examples
--------
>>> import subprocess, sys
>>> subprocess.run([sys.executable, "-m", "probvae", "--help"], capture_output=True).returncode
0
"""
from probvae.applications.cli import console

if __name__ == "__main__":
    console()
