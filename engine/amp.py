"""Mixed precision as one switch: fp16 with dynamic loss scaling on CUDA, bf16 autocast on CPU.

mmengine's AmpOptimWrapper refuses to run without an accelerator, so on CPU a plain OptimWrapper
runs the forward pass under bf16 autocast (bf16 has fp32's exponent range: no loss scaling needed).
"""
from contextlib import contextmanager

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUBf16OptimWrapper(OptimWrapper):
    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(device_type='cpu', dtype=torch.bfloat16):
            yield


@OPTIM_WRAPPERS.register_module()
def MixedPrecisionOptimWrapper(loss_scale='dynamic', **kwargs):
    """Build the right mixed-precision wrapper for the device this process trains on."""
    if torch.cuda.is_available():
        return AmpOptimWrapper(loss_scale=loss_scale, dtype='float16', **kwargs)
    return CPUBf16OptimWrapper(**kwargs)
