import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RESLENS_DATA", ROOT.parent / "shared" / "data" / "cifar10"))
HAVE_DATA = (DATA / "test").is_dir() or (DATA / "cifar-10-batches-py").is_dir()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not found; set RESLENS_DATA")


@pytest.fixture(autouse=True)
def _data_env(monkeypatch):
    if HAVE_DATA:
        monkeypatch.setenv("RESLENS_DATA", str(DATA))
    monkeypatch.setenv("RESLENS_RESULTS", "off")  # every test computes; tests of the store name a folder
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def tiny(residual=True, depth=8, seed=0, width=8, name=None):
    """A tiny 6n+2 net (width 8) with non-trivial BN statistics, in eval mode; ``name`` (e.g.
    "resnet14-preact") builds that architecture instead of ``residual``/``depth``."""
    from analysis.core.models import CifarResNet, build_model

    torch.manual_seed(seed)
    m = build_model(name, width=width) if name else CifarResNet(depth, residual=residual, width=width)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m.eval()


def make_imagefolder(root: Path, per_class: int = 3, classes=None, seed: int = 0, fmt="png"):
    """A tiny ImageFolder with train/ and test/ of random 32x32 images in the ten CIFAR-10 class folders;
    returns the arrays per split."""
    import numpy as np
    from PIL import Image

    from analysis.core.data import CLASSES

    classes = classes or CLASSES

    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "test"):
        arrs = []
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{i:04d}.{fmt}")
                arrs.append(a)
        out[split] = arrs
    return out
