"""The dependency set-up: MLflow 3 and a working torchattacks APGD side by side."""

from __future__ import annotations

import torch


def test_mlflow_is_3x_beside_torchattacks():
    import mlflow
    import torchattacks

    assert int(mlflow.__version__.split(".")[0]) >= 3, mlflow.__version__
    assert hasattr(torchattacks, "APGD")


def test_torchattacks_apgd_l2_runs_and_respects_eps():
    import torchattacks

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)).eval()
    images = torch.rand(16, 1, 8, 8)
    labels = model(images).argmax(-1)  # every point starts correctly classified
    eps = 0.5
    attack = torchattacks.APGD(model, norm="L2", eps=eps, steps=10, loss="ce", seed=0)
    adv = attack(images, labels)
    assert adv.shape == images.shape and adv.min() >= 0 and adv.max() <= 1
    assert ((adv - images).flatten(1).norm(dim=1) <= eps + 1e-4).all()
    assert (model(adv).argmax(-1) != labels).any()  # a linear model at eps 0.5 is attackable


def test_the_search_starts_quietly():
    """Importing the search prints nothing (MLflow's pyfunc type-hint warning included): a
    newcomer reads any start-up warning as a fault."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "default", "-c", "import search.run, search.tracking, analysis.report"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == "", done.stderr[-2000:]
