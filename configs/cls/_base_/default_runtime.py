# Runtime shared by every pretraining config: scope, hooks, logging (text + TensorBoard), checkpoints.
default_scope = 'bagtricks'
runner_type = 'BagRunner'  # checkpoint policy + preflight checks, also under mmdet's/mmseg's own tools/train.py
custom_imports = dict(imports=['classification', 'engine'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # top-1/top-5 on val every epoch; keep the best (by top-1) and the last checkpoints
    checkpoint=dict(type='BagCheckpointHook', interval=1, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater',
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [dict(type='ResultsHook')]  # <work_dir>/{val,test}_results.json, the one results schema
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
log_processor = dict(type='ThroughputLogProcessor', by_epoch=True, window_size=50)  # img/s next to the ETA
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
