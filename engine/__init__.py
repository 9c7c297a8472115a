"""mmengine glue shared by the three training tools (pretrain, train_det, train_seg).

Task packages never import each other; what all tools need lives here once: the Runner with the
project's checkpoint policy, preflight checks and multi-process support, the mixed-precision optimizer
wrapper, the common command line and the guard that turns user errors into one ``error:`` line.
"""
from .amp import MixedPrecisionOptimWrapper
from .cli import ConfigError, add_common_args, apply_pretrained, build_config
from .guard import PreflightError, UserInputError, run_tool
from .results import write_results_json
from .runner import BagRunner, runner_from_cfg
from .throughput import ThroughputLogProcessor

__all__ = ['BagRunner', 'ConfigError', 'MixedPrecisionOptimWrapper', 'PreflightError', 'ThroughputLogProcessor',
           'UserInputError', 'add_common_args', 'apply_pretrained', 'build_config',
           'run_tool', 'runner_from_cfg', 'write_results_json']
