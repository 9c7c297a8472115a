"""Export a classifier checkpoint to ONNX: the classifier's logits, or with --backbone the backbone's stage maps.

    python tools/export_onnx.py configs/cls/resnet50d_tricks.py work_dirs/resnet50d_tricks/epoch_200.pth r50d.onnx
        [--backbone] [--size N] [--opset N] [--cfg-options k=v ...]

* Input ``input``: float32 NCHW, RGB, normalised as the config's test pipeline does it ((pixel - mean) / std on
  the 0-255 scale; the values are stored in the file's metadata), N x 3 x size x size. The batch axis is dynamic
  (``batch``); height and width are fixed at ``--size`` (default: the config's test crop, 224; Inception-V3 299).
* Outputs: ``logits`` (N x classes), or with ``--backbone`` one output per stage, ``stage0`` .. ``stage3`` (every
  stage of the backbone, whatever ``out_indices`` the classification config keeps; strides 4, 8, 16, 32).
* The checkpoint is read with the restricted loader (safe_read) and checked strictly against the model the config
  builds (keys, shapes, finite floating-point values) before anything is exported; its ``state_dict`` is
  exported (for a checkpoint trained with EMAHook, the EMA weights, as mmengine saves them).
* The file is written through the writing layer (safe_write.write_with): the exporter writes a temporary file in
  the output's folder, which is renamed over the output when complete; an output that is a folder, a link, an
  input or a file bagtricks did not write is refused before the export.

Exporter: torch.onnx.export(dynamo=True), the torch.export-based exporter (torch's default since 2.9; the
TorchScript one, dynamo=False, still exists in torch 2.14 but is deprecated and warns). It needs ``onnx`` and
``onnxscript`` at run time (both runtime dependencies in pyproject.toml) and nothing from the network. The whole
model goes into the one file (no external data file: the writing layer renames one file, and every network here
is far below protobuf's 2 GB). docs/test_resolution_and_onnx.md gives the agreement with onnxruntime measured
per network.
"""
from __future__ import annotations

import os.path as osp
import warnings

import torch
from torch import nn

import safe_write
from backbones.checkpoint import check_model_fits
from engine.cfg_options import apply_cfg_options
from engine.cli import CfgOptionsAction, read_config
from engine.test_resolution import config_size
from safe_read import load_weights_file
from tool_boundary import ToolArgumentParser, int_range, one_line, run_tool
from user_errors import ConfigError

# torch 2.14's ONNX exporter: 18 is the lowest opset it implements (below, it converts afterwards and may keep 18),
# 23 its highest (torch.onnx._constants.ONNX_MAX_OPSET)
OPSETS = (18, 23)
INPUT = 'input'


def parse_args(argv=None):
    parser = ToolArgumentParser(description='Export a classifier checkpoint (or its backbone) to ONNX')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='classifier checkpoint (backbone.* + head.fc.*)')
    parser.add_argument('out', help='ONNX file to write (e.g. model.onnx)')
    parser.add_argument('--backbone', action='store_true',
                        help='export the backbone alone: one output per stage (stage0..stage3) instead of the logits')
    parser.add_argument('--size', type=int_range(8, 4096), metavar='N',
                        help="input height and width (default: the config's test crop size)")
    parser.add_argument('--opset', type=int_range(*OPSETS), metavar='N',
                        help=f"ONNX opset, {OPSETS[0]}..{OPSETS[1]} (default: the exporter's)")
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config entries, e.g. model.num_classes=10')
    return parser.parse_args(argv)


class Logits(nn.Module):
    """The classifier's logits (BagClassifier.logits: backbone, pool, FC), the graph of the ONNX file."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.logits(x)


class Stages(nn.Module):
    """The backbone's stage maps, one output each."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.backbone(x))


def build_model(cfg, backbone_only: bool) -> nn.Module:
    """The classifier the config builds, with no teacher and no pretrained load (the checkpoint gives every
    weight); with ``backbone_only`` its backbone returns every stage."""
    import classification  # noqa: F401  (registers the classifier)
    from backbones.registry import MODELS
    model_cfg = dict(cfg.model)
    model_cfg.pop('distill', None)
    backbone = dict(model_cfg.get('backbone') or {})
    backbone.pop('init_cfg', None)
    backbone.pop('pretrained', None)
    if backbone_only:
        backbone['out_indices'] = tuple(range(backbone.get('num_stages', 4)))
    model_cfg['backbone'] = backbone
    try:
        return MODELS.build(model_cfg)
    except (ValueError, KeyError, AssertionError) as e:
        raise ConfigError(f'the model config does not build: {one_line(e)}') from e


def input_spec(cfg, size: int | None) -> dict:
    """Size and normalisation of the exported input, from the config's test (else val) pipeline."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    pipeline = (dataset.get('pipeline') if isinstance(dataset, dict) else None) or []
    norm = next((t for t in pipeline if isinstance(t, dict) and str(t.get('type', '')).endswith('Normalize')), None)
    spec = dict(mean=list(norm['mean']), std=list(norm['std'])) if norm and 'mean' in norm and 'std' in norm else {}
    if size is None:
        try:
            size = config_size(loader)
        except ConfigError as e:
            raise ConfigError(f'{e}; pass --size N') from None
    spec['size'] = size
    return spec


def export(config: str, checkpoint: str, out: str, backbone_only: bool = False, size: int | None = None,
           opset: int | None = None, cfg_options: dict | None = None) -> dict:
    """Write ``out``; returns what was exported (size, output names, opset asked for)."""
    safe_write.check_output(out, 'ONNX file', input_files=(checkpoint, config))  # before anything is read
    cfg = read_config(config)
    if cfg_options:
        apply_cfg_options(cfg, cfg_options)
    model = build_model(cfg, backbone_only)
    state = check_model_fits(model, load_weights_file(checkpoint), checkpoint)  # restricted loader, strict fit
    model.load_state_dict(state, strict=False)  # checked strictly above: only num_batches_tracked may be absent
    spec = input_spec(cfg, size)
    net = (Stages(model.backbone) if backbone_only else Logits(model)).eval()
    names = [f'stage{i}' for i in model.backbone.out_indices] if backbone_only else ['logits']
    example = torch.zeros(2, 3, spec['size'], spec['size'])  # batch 2: torch.export specialises a batch of 1
    batch = torch.export.Dim('batch', min=1, max=2 ** 16)
    meta = {'bagtricks.input': 'float32 NCHW RGB, (pixel - mean) / std on the 0-255 scale',
            'bagtricks.size': str(spec['size']), 'bagtricks.outputs': ','.join(names),
            'bagtricks.config': osp.basename(config), 'bagtricks.checkpoint': osp.basename(checkpoint)}
    if 'mean' in spec:
        meta['bagtricks.mean'] = ','.join(map(str, spec['mean']))
        meta['bagtricks.std'] = ','.join(map(str, spec['std']))

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')  # torch.export's notes on the traced model
            program = torch.onnx.export(net, (example,), dynamo=True, verbose=False, input_names=[INPUT],
                                        output_names=names, dynamic_shapes=({0: batch},), opset_version=opset,
                                        external_data=False)
        program.model.metadata_props.update(meta)
        program.save(tmp, external_data=False)

    safe_write.write_with(out, write, what='ONNX file', input_files=(checkpoint, config))
    return dict(size=spec['size'], outputs=names, opset=opset)


def main(argv=None) -> dict:
    args = parse_args(argv)
    done = export(args.config, args.checkpoint, args.out, args.backbone, args.size, args.opset, args.cfg_options)
    print(f'exported {"the backbone" if args.backbone else "the classifier"} of {args.checkpoint} to {args.out}: '
          f'{INPUT} [batch, 3, {done["size"]}, {done["size"]}] -> {", ".join(done["outputs"])}')
    return done


if __name__ == '__main__':
    run_tool(main)
