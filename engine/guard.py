"""The tools' error boundary, as the engine's modules use it: ``one_line`` (an exception as one line, a
data-loader worker's error without its traceback text), ``is_user_error`` and ``run_tool``.

They live in ``tool_boundary`` (standard library only, beside ``user_errors``), so that a tool answers a
bad argument without importing the engine; this module re-exports them for ``engine.run_tool`` and
``from .guard import one_line``.
"""
from tool_boundary import ToolArgumentParser, is_user_error, one_line, run_tool

__all__ = ['ToolArgumentParser', 'is_user_error', 'one_line', 'run_tool']
