# Table 4 "+ FP16" = the efficient setting: mixed precision (fp16 + loss scaling on CUDA, bf16 autocast on CPU).
_base_ = './resnet50_bs1024_warmup_zerogamma_nobiasdecay.py'
optim_wrapper = dict(type='MixedPrecisionOptimWrapper')
