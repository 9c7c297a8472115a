# Table 4 "+ FP16" = the efficient setting: mixed precision chosen by the device (engine/amp.py): fp16 + loss
# scaling on CUDA (the paper's), bf16 autocast on a CPU with bf16 instructions, fp32 on other CPUs (emulated bf16
# is slower than fp32). Force one with optim_wrapper.amp_dtype=fp16|bf16|fp32.
_base_ = './resnet50_bs1024_warmup_zerogamma_nobiasdecay.py'
optim_wrapper = dict(type='MixedPrecisionOptimWrapper', amp_dtype='auto')
