"""The label-side tricks of Section 5: label smoothing, mixup and knowledge distillation.

Targets are always probability vectors (N, K), so smoothing, mixup and distillation compose:
mixup mixes two smoothed target vectors with the same lambda as the images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_targets(labels: torch.Tensor, num_classes: int, eps: float = 0.0) -> torch.Tensor:
    """Eq. (4) of the paper: 1 - eps on the true class, eps / (K - 1) on every other class."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f'label smoothing eps must be in [0, 1), got {eps}')
    targets = torch.full((labels.shape[0], num_classes), eps / (num_classes - 1), device=labels.device)
    return targets.scatter_(1, labels.long().view(-1, 1), 1.0 - eps)


def sample_mixup(batch_size: int, alpha: float, device=None) -> tuple[float, torch.Tensor]:
    """One lambda ~ Beta(alpha, alpha) for the whole batch (as GluonCV) and a random partner permutation."""
    if alpha <= 0:
        raise ValueError(f'mixup alpha must be > 0, got {alpha}')
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    return lam, torch.randperm(batch_size, device=device)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, lam: float,
          perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (6): x = lam * x_i + (1 - lam) * x_j, y = lam * y_i + (1 - lam) * y_j with j = perm[i]."""
    return lam * inputs + (1 - lam) * inputs[perm], lam * targets + (1 - lam) * targets[perm]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k targets_k * log softmax(logits)_k (targets are distributions)."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def distillation_loss(student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 20.0, hard_weight: float = 0.5) -> torch.Tensor:
    """Eq. (7), weighted as GluonCV: hw * CE(student, targets) + (1 - hw) * T^2 * CE(s / T, softmax(t / T))."""
    soft = F.softmax(teacher_logits.detach().float() / temperature, dim=1)
    return (hard_weight * soft_cross_entropy(student_logits, targets)
            + (1 - hard_weight) * temperature ** 2 * soft_cross_entropy(student_logits / temperature, soft))
