# Baseline schedule (Section 2.1): Nesterov SGD, lr 0.1 per 256 images (linear scaling via auto_scale_lr),
# divided by 10 at epochs 30, 60 and 90 of 120.
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)]
auto_scale_lr = dict(enable=True, base_batch_size=256)
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
val_cfg = dict()
test_cfg = dict()
