# Table 4 "+ No bias decay": weight decay only on conv/FC weights, not on biases nor BN gamma/beta.
_base_ = './resnet50_bs1024_warmup_zerogamma.py'
optim_wrapper = dict(paramwise_cfg=dict(bias_decay_mult=0.0, norm_decay_mult=0.0))
