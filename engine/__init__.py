"""mmengine glue shared by the three training tools (pretrain, train_det, train_seg).

Task packages never import each other; what all tools need lives here once: the Runner with the
project's checkpoint policy, the mixed-precision optimizer wrapper, and the common command line.
"""
from .amp import MixedPrecisionOptimWrapper
from .cli import add_common_args, apply_pretrained, build_config
from .results import write_results_json
from .runner import BagRunner

__all__ = ['BagRunner', 'MixedPrecisionOptimWrapper', 'add_common_args', 'build_config', 'apply_pretrained',
           'write_results_json']
