"""mmengine glue shared by the tools (pretrain, train_det, train_seg and the test tools).

Task packages never import each other; what all tools need lives here once: the Runner with the
project's checkpoint policy, preflight checks and multi-process support, the mixed-precision optimizer
wrapper, the common command line and the guard that turns user errors into one ``error:`` line (the
error classes themselves are in ``user_errors``).

Importing the package registers, in mmengine's registries, what configs name: ``BagRunner``
(``runner_type``), ``MixedPrecisionOptimWrapper`` (``optim_wrapper.type``, ``--amp``), ``BagEMAHook``
(``custom_hooks``) and ``ThroughputLogProcessor``; configs list ``'engine'`` in ``custom_imports`` for that.
"""
from .amp import MixedPrecisionOptimWrapper
from .cli import add_test_args, add_train_args, build_config, build_test_config
from .ema import BagEMAHook, select_weights
from .guard import run_tool
from .results import write_results_json
from .runner import BagRunner, runner_from_cfg
from .throughput import ThroughputLogProcessor

__all__ = ['BagEMAHook', 'BagRunner', 'MixedPrecisionOptimWrapper', 'ThroughputLogProcessor', 'add_test_args',
           'add_train_args', 'build_config', 'build_test_config', 'run_tool', 'runner_from_cfg', 'select_weights',
           'write_results_json']
