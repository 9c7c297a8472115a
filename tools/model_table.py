"""Print params and FLOPs (multiply-accumulates, as the paper counts them) of ResNet-50 A/B/C/D at
224x224 next to the paper's Table 5, then the paper's other two networks (Inception-V3 at 299, MobileNet
1.0 at 224) next to independent counts (torchvision's inception_v3, timm's mobilenetv1_100) and the
paper's figures.  Usage: python tools/model_table.py [--depth 50] [--size 224]"""
from backbones.complexity import PAPER_NETS, PAPER_TABLE5, complexity, net_complexity
from backbones.resnet import ARCH
from tool_boundary import ToolArgumentParser, int_range, run_tool


def resnet_table(depth: int, size: int) -> list[str]:
    lines = ['| model | params (M) | GFLOPs (MACs) | paper params | paper GFLOPs | paper top-1 |',
             '|---|---|---|---|---|---|']
    for v in 'ABCD':
        c = complexity(depth, v, size)
        ref = PAPER_TABLE5[v] if depth == 50 and size == 224 else {}
        name = f'ResNet-{depth}' + ('' if v == 'A' else f'-{v}')
        lines.append(f"| {name} | {c['params_m']:.2f} | {c['gmacs']:.2f} | {ref.get('params_m', '-')}M "
                     f"({ref.get('independent_params_m', '-')}M) | {ref.get('gflops', '-')} | {ref.get('top1', '-')} |")
    return lines


def networks_table() -> list[str]:
    lines = ['| model | input | params (M) | GMACs conv+FC (all ops) | independent: params (M), GMACs conv+FC '
             '| paper params | paper GMACs | paper top-1 baseline / efficient |',
             '|---|---|---|---|---|---|---|---|']
    missing = []
    for name in PAPER_NETS:
        c = net_complexity(name)
        ours, ref, paper = c['ours'], c['reference'], c['paper']
        params = f"{ours['params_m']:.2f}" + (f" ({ours['params_aux_m']:.2f} with aux head)" if 'params_aux_m' in ours else '')
        paper_params = f"{paper['params_m']}M" + (f" ({paper['params_aux_m']}M)" if 'params_aux_m' in paper else '')
        if ref is None:
            indep = 'timm not installed'
            missing.append(name)
        else:
            indep = (f"{ref['source']}: {ref['params_m']:.2f}"
                     + (f" ({ref['params_aux_m']:.2f})" if 'params_aux_m' in ref else '') + f", {ref['gmacs_conv_fc']:.3f}")
        lines.append(f"| {paper['label']} | {c['size']} | {params} | {ours['gmacs_conv_fc']:.3f} ({ours['gmacs']:.3f}) | "
                     f"{indep} | {paper_params} | {paper['gmacs']} | {paper['top1_baseline']:.2f} / {paper['top1_efficient']:.2f} |")
    if missing:
        lines.append('')
        lines.append('(independent MobileNet count: `pip install timm`, part of the `test` extra)')
    return lines


def main(argv=None):
    p = ToolArgumentParser(description=__doc__)
    p.add_argument('--depth', type=int, default=50, choices=sorted(ARCH))
    p.add_argument('--size', type=int_range(32, 1024), default=224,
                   help='input size of the ResNet table (32 to 1024; the network downsamples 32x)')
    args = p.parse_args(argv)
    print('\n'.join(resnet_table(args.depth, args.size)))
    print()
    print('\n'.join(networks_table()))


if __name__ == '__main__':
    run_tool(main)
