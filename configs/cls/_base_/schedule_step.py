# Baseline schedule (Section 2.1): Nesterov SGD, lr 0.1 per 256 images (linear scaling via auto_scale_lr),
# divided by 10 at epochs 30, 60 and 90 of 120.
# fused=True: one kernel for the whole update (same arithmetic). torch's default on CPU is a loop over the
# tensors, once per parameter group, and paramwise_cfg (no bias decay) makes one group per parameter: the
# step took 0.59 s of a 5.2 s ResNet-50-D iteration at batch 8 on CPU, fused about 0.04-0.12 s (docs/measurements.md)
# accumulative_counts: gradient accumulation, iterations per optimizer step (mmengine's switch; 1 = off). Linear
# scaling (BagRunner) and the trick table use the effective batch, processes x batch x accumulative_counts; BN
# statistics still see the per-process batch (docs/ema_and_accumulation.md).
optim_wrapper = dict(type='OptimWrapper', accumulative_counts=1,
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True, fused=True))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)]
auto_scale_lr = dict(enable=True, base_batch_size=256)
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
val_cfg = dict()
test_cfg = dict()
