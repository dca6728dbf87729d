"""Top-1 error of a net on images: the one measurement of error the zoo, training, import and the CLI share."""

from __future__ import annotations

import torch

from . import data as D
from .common import count_wrong, error_pct
from .models import CifarResNet


@torch.no_grad()
def evaluate_error(model: CifarResNet, images: torch.Tensor, labels: torch.Tensor,
                   device: torch.device, chunk: int = 1000, bf16: bool = True) -> float:
    """Top-1 error in percent, eval mode, in chunks; uint8 images are normalised here. A model in eval mode
    (every shared, cached one) is only read; only a model being trained (which its training loop owns) is
    switched to eval mode for the measurement and back."""
    was_training = model.training
    if was_training:
        model.eval()
    wrong = 0
    for xs, ys in zip(images.split(chunk), labels.split(chunk)):
        x = D.normalize(xs.to(device, non_blocking=True)).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            wrong += count_wrong(model(x), ys)
    if was_training:
        model.train()
    return error_pct(wrong, len(labels))
