"""Print params and FLOPs (multiply-accumulates, as the paper counts them) of ResNet-50 A/B/C/D at
224x224 next to the paper's Table 5.  Usage: python tools/model_table.py [--depth 50] [--markdown]"""
import argparse

from backbones.complexity import PAPER_TABLE5, complexity


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--depth', type=int, default=50)
    p.add_argument('--size', type=int, default=224)
    args = p.parse_args()
    print(f'| model | params (M) | GFLOPs (MACs) | paper params | paper GFLOPs | paper top-1 |')
    print('|---|---|---|---|---|---|')
    for v in 'ABCD':
        c = complexity(args.depth, v, args.size)
        ref = PAPER_TABLE5[v] if args.depth == 50 and args.size == 224 else {}
        name = f'ResNet-{args.depth}' + ('' if v == 'A' else f'-{v}')
        print(f"| {name} | {c['params_m']:.2f} | {c['gmacs']:.2f} | {ref.get('params_m', '-')}M "
              f"({ref.get('independent_params_m', '-')}M) | {ref.get('gflops', '-')} | {ref.get('top1', '-')} |")


if __name__ == '__main__':
    main()
