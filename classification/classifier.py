"""Classifier = registry backbone + global average pool + FC (``head.fc``), trained with the paper's
label-side tricks. Its state dict is ``backbone.*`` + ``head.fc.*``; a distillation teacher is held
outside the module tree, so it is neither saved, optimised, nor switched to train mode.
"""
from __future__ import annotations

import copy
import hashlib
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import nn

from backbones.checkpoint import check_fits, state_dict_of
from safe_read import load_weights_file

from .label_tricks import distillation_loss, mixup, sample_mixup, smooth_targets, soft_cross_entropy
from .preprocessor import BagDataPreprocessor
from .registry import MODELS


class LinearClsHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, xavier: bool, dropout: float = 0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()  # Inception-V3: 0.5 (GluonCV, torchvision)
        self.fc = nn.Linear(in_channels, num_classes)
        if xavier:  # the paper's baseline init (Section 2.1) covers the FC too
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(feat), 1)))


def build_teacher(config: str, checkpoint: str, num_classes: int) -> 'BagClassifier':
    """A frozen eval-mode classifier from its own config file and a checkpoint (read weights_only)."""
    cfg = Config.fromfile(config)
    model_cfg = dict(cfg.model, distill=None, mixup_alpha=0.0, label_smoothing=0.0)
    teacher = MODELS.build(model_cfg)
    if teacher.num_classes != num_classes:
        raise ValueError(f'teacher {config} has {teacher.num_classes} classes, the student {num_classes}')
    state = state_dict_of(load_weights_file(checkpoint))
    target = teacher.state_dict()
    check_fits(state, target, f'the teacher built from {config}', checkpoint)
    teacher.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    teacher.requires_grad_(False)
    print_log(f'distillation teacher: {config}, {len(state)}/{len(target)} tensors from {checkpoint}',
              logger='current')
    return teacher.eval()


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


@MODELS.register_module()
class BagClassifier(BaseModel):
    """Args:
        backbone: backbone config (any registry backbone with ``feat_channels`` and ``out_indices``).
        num_classes: classes of the FC.
        label_smoothing: eps of eq. (4); 0 is plain one-hot.
        mixup_alpha: Beta(alpha, alpha) of mixup; 0 is off.
        distill: ``dict(teacher_config=..., teacher_checkpoint=..., temperature=20, hard_weight=0.5)`` or None.
        dropout: dropout before the FC while training (0 = none; Inception-V3's recipe uses 0.5).
        data_preprocessor: mmengine data preprocessor (default: :class:`BagDataPreprocessor`, the batch to the
            device and the batched photometric step of ``Photometric(where='device')`` pipelines).
    """

    def __init__(self, backbone: dict, num_classes: int, label_smoothing: float = 0.0, mixup_alpha: float = 0.0,
                 distill: dict | None = None, data_preprocessor: dict | None = None, init_cfg=None,
                 dropout: float = 0.0):
        super().__init__(data_preprocessor=data_preprocessor or BagDataPreprocessor(), init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError(f'num_classes must be >= 2, got {num_classes}')
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing}')
        if mixup_alpha < 0:
            raise ValueError(f'mixup_alpha must be >= 0 (0 = off), got {mixup_alpha}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.mixup_alpha = mixup_alpha
        self.backbone = MODELS.build(backbone)
        in_channels = self.backbone.feat_channels[self.backbone.out_indices[-1]]
        self.head = LinearClsHead(in_channels, num_classes, xavier=getattr(self.backbone, 'init', None) == 'xavier',
                                  dropout=dropout)
        self._teacher = None
        self.teacher_reference = None
        if distill:
            unknown = set(distill) - {'teacher_config', 'teacher_checkpoint', 'temperature', 'hard_weight'}
            if unknown or not distill.get('teacher_config') or not distill.get('teacher_checkpoint'):
                raise ValueError('distill needs teacher_config and teacher_checkpoint (optional: temperature, '
                                 f'hard_weight); got keys {sorted(distill)}')
            self.temperature = float(distill.get('temperature', 20.0))
            self.hard_weight = float(distill.get('hard_weight', 0.5))
            if self.temperature <= 0 or not 0.0 <= self.hard_weight <= 1.0:
                raise ValueError(f'distill: temperature must be > 0 and hard_weight in [0, 1], '
                                 f'got {self.temperature}, {self.hard_weight}')
            # kept out of the module tree: not in state_dict(), parameters() or train()
            self.__dict__['_teacher'] = build_teacher(distill['teacher_config'], distill['teacher_checkpoint'],
                                                      num_classes)
            # saved in checkpoint meta by BagRunner; a resume must use the same teacher file
            self.teacher_reference = dict(config=osp.abspath(distill['teacher_config']),
                                          checkpoint=osp.abspath(distill['teacher_checkpoint']),
                                          sha256=file_sha256(distill['teacher_checkpoint']))

    @property
    def teacher(self) -> 'BagClassifier | None':
        return self._teacher

    def __deepcopy__(self, memo):
        """A deep copy (mmengine's EMAHook copies the model for its average) shares the frozen teacher instead
        of copying it: it is never trained, saved or averaged."""
        if self._teacher is not None:
            memo[id(self._teacher)] = self._teacher
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__setstate__(copy.deepcopy(self.__dict__, memo))
        return copied

    def _apply(self, fn, *args, **kwargs):  # .to(device) / .half() also move the teacher
        super()._apply(fn, *args, **kwargs)
        if self._teacher is not None:
            self._teacher._apply(fn, *args, **kwargs)
        return self

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(inputs)[-1])

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        return smooth_targets(labels, self.num_classes, self.label_smoothing)

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> dict:
        targets = self.targets(labels)
        if self.mixup_alpha > 0:
            lam, perm = sample_mixup(inputs.shape[0], self.mixup_alpha, inputs.device)
            inputs, targets = mixup(inputs, targets, lam, perm)
        logits = self.logits(inputs)
        if self._teacher is None:
            return dict(loss=soft_cross_entropy(logits, targets))
        with torch.no_grad():
            teacher_logits = self._teacher.logits(inputs)  # the same (mixed) batch
        return dict(loss=distillation_loss(logits, targets, teacher_logits, self.temperature, self.hard_weight))

    def forward(self, inputs: torch.Tensor, data_samples: torch.Tensor | None = None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            scores = self.logits(inputs).float()
            return [dict(pred_score=s, gt_label=int(l)) for s, l in zip(scores, data_samples)]
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")
