"""Log lines with images/s next to the ETA (``log_processor=dict(type='ThroughputLogProcessor')``).

mmengine's LogProcessor reports seconds per iteration; a user watching a long run compares machines
and settings in images per second. The figure is the window-averaged iteration time of the line
(IterTimerHook's ``time``, which includes data loading) turned into images/s over all processes:
``batch_size x world_size / time``.
"""
from __future__ import annotations

from mmengine.registry import LOG_PROCESSORS
from mmengine.runner import LogProcessor


@LOG_PROCESSORS.register_module()
class ThroughputLogProcessor(LogProcessor):

    def get_log_after_iter(self, runner, batch_idx: int, mode: str):
        tag, log_str = super().get_log_after_iter(runner, batch_idx, mode)
        loader = getattr(runner, f'{mode}_dataloader', None)  # only this mode's: a run without val has no val loop
        # mmdet's AspectRatioBatchSampler leaves DataLoader.batch_size None: ask the batch sampler then
        batch = getattr(loader, 'batch_size', None) or getattr(getattr(loader, 'batch_sampler', None), 'batch_size', None)
        seconds = tag.get('time')
        if batch and seconds:
            ips = batch * runner.world_size / seconds
            tag['img_per_s'] = ips
            field = f'img/s: {ips:.1f}' if ips >= 10 else f'img/s: {ips:.3g}'  # a slow CPU run: 0.0512, not 0.0
            if '  time: ' in log_str:  # right after the ETA (train) or before the time (val/test)
                head, tail = log_str.split('  time: ', 1)
                log_str = f'{head}  {field}  time: {tail}'
            else:
                log_str = f'{log_str}  {field}'
        return tag, log_str
