# Table 6's every-trick row (resnet50d_tricks.py) + an exponential moving average (EMA) of the weights: not in
# the paper; timm's --model-ema, mmengine's EMAHook. One switch, the hook below (docs/ema_and_accumulation.md).
#
# * Per optimizer step (BagEMAHook: mmengine's EMAHook, which updates every iteration, made to skip the
#   iterations of an accumulation window): ema = (1 - m) * ema + m * weights, with m = max(1e-4, 10 / (10 + t))
#   at step t (mmengine's MomentumAnnealingEMA). The floor 1e-4 averages over ~10,000 steps (8 epochs at the
#   paper's batch 1024, 1,251 steps an epoch), reached at step ~100,000 (epoch 80 of 200). Before that the
#   average spans the last ~10 % of the steps taken, so the EMA model follows training from the first epoch:
#   a fixed 1e-4 from step 0 leaves it at the initial weights for thousands of steps (the reported "EMA top-1
#   is 0" of mmpretrain #870 / timm #245 in the first epochs).
# * BatchNorm: update_buffers=True averages running_mean / running_var with the same m, so the EMA model
#   normalises with statistics from the same window of training as its weights. Copying the raw model's
#   statistics (update_buffers=False, mmengine's default) pairs the averaged weights with the statistics of
#   other weights, those of the last ~10 batches (BN momentum 0.1); tests/test_ema_accumulation.py measures both.
# * Validation runs on the EMA weights. A checkpoint's state_dict holds the EMA weights (and statistics), ready
#   to export or deploy; its ema_state_dict holds the raw ones (keys module.*), which --resume trains on and
#   tools/test_cls.py / export_backbone.py read with --weights raw.
_base_ = './resnet50d_tricks.py'
custom_hooks = _base_.custom_hooks + [
    dict(type='BagEMAHook', ema_type='MomentumAnnealingEMA', momentum=1e-4, gamma=10, update_buffers=True,
         priority='ABOVE_NORMAL')]  # swap in the EMA weights before the other hooks see validation (as mmpretrain)
