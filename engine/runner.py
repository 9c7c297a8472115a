"""An mmengine Runner that applies the project's checkpoint policy (see backbones.checkpoint).

torch >= 2.6 loads with ``weights_only=True`` by default, which mmengine 0.10.7 does not expect.
Here the choice is explicit: ``--resume`` reads the project's own training state with the full
unpickler; every other load (``load_from``, a checkpoint to test) goes through the restricted one.
"""
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from backbones.checkpoint import load_training_state, load_weights_file


class BagRunner(Runner):
    _resuming = False

    def resume(self, filename, resume_optimizer=True, resume_param_scheduler=True, map_location='default'):
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming = False

    def load_checkpoint(self, filename, map_location='cpu', strict=False, revise_keys=[(r'^module.', '')]):
        checkpoint = load_training_state(filename) if self._resuming else load_weights_file(filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
