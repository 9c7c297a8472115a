"""ImageNet-style pretraining: data and augmentation, the classifier, the tricks of the paper.

Importing the package registers everything (configs use ``custom_imports=['classification']``).
"""
from .classifier import BagClassifier, LinearClsHead, build_teacher
from .datasets import ImageNetFolder, UnreadableImageError
from .label_tricks import distillation_loss, mixup, sample_mixup, smooth_targets, soft_cross_entropy
from .metrics import Accuracy
from .registry import DATASETS, METRICS, MODELS, PARAM_SCHEDULERS, TRANSFORMS
from .schedules import LinearWarmupLR, lr_schedule
from .transforms import PCALighting, build_pipeline

__all__ = ['BagClassifier', 'LinearClsHead', 'build_teacher', 'ImageNetFolder', 'UnreadableImageError',
           'distillation_loss', 'mixup', 'sample_mixup', 'smooth_targets', 'soft_cross_entropy', 'Accuracy',
           'DATASETS', 'METRICS', 'MODELS', 'PARAM_SCHEDULERS', 'TRANSFORMS', 'LinearWarmupLR', 'lr_schedule',
           'PCALighting', 'build_pipeline']
