"""One prepared check for the first machine with a GPU (``make gpu-check``): at most 8 minutes, one JSON file,
one README section.

    python tools/gpu_check.py [--out results/gpu_check.json] [--readme README.md] [--budget 480]
        [--steps env,fp16_scaler,...] [--dry-run [--dry-run-dir DIR]]

Every step is a subprocess (this file in child mode) with its own timeout inside the budget; each records its
figures and checks, or its failure (exit status and the end of its output), or that it timed out or did not fit
the budget, and a failed step does not stop the others. Steps, cheapest and most telling first:

* ``env``: torch, CUDA, the GPUs, the OpenMMLab stack, mmcv's CUDA ops (nms on the GPU), device_caps' choice,
  whether torch's deterministic mode (``randomness.deterministic=True``) runs the classifier's ops on CUDA.
* ``fp16_scaler``: the shipped efficient config's MixedPrecisionOptimWrapper (amp_dtype auto) on the GPU picks
  fp16; loss scaled, a forced overflow skips the step and halves the scale, the scaler's state saved and
  restored; ResNet-50-D training img/s at batch 64 (224 px, channels-last) in fp16, bf16 and fp32.
* ``det_amp``: ``tools/train_det.py`` Faster R-CNN R-50-D FPN (Table 7 config) with ``--amp``, batch 2 at VOC's
  1000x600, 4 iterations and a validation on generated VOC files.
* ``seg_amp``: ``tools/train_seg.py`` FCN R-50-D8 (Table 8 config) with ``--amp``, batch 4 of 512x512 crops, 4
  iterations, as shipped (NCHW, measured on CPU only) and with ``channels_last=True``.
* ``bench_data``: ``tools/benchmark_data.py --device cuda``: nvjpeg batched decode on the GPU against the CPU
  workers, with the projection (cores needed to feed the GPU).
* ``bench_e2e``: ``tools/benchmark_e2e.py`` on CUDA: ``tools/pretrain.py`` against a plain loop, fp16 +
  channels-last, batch 64.
* ``nccl`` (2 or more GPUs): ``tools/dist_train.sh pretrain`` with 2 processes x batch 8 over nccl against 1
  process x batch 16, TF32 off: the final weights must be equal (to 1e-4 of how far training moved them).

Peak GPU memory of each step: ``nvidia-smi`` polled every 0.2 s while it runs (most used by any GPU, and above
the idle baseline), and where the step reports it, torch's own peak (``max_memory_allocated``; the training tools
log it as ``memory``). The figures go to ``--out`` (through safe_write) and, rendered as a table, between the
``<!-- gpu-check:begin -->`` / ``<!-- gpu-check:end -->`` markers of ``--readme``; nothing else in it changes.

Without CUDA (or with ``--dry-run``) it says so, lists the steps, runs three probes of its own plumbing
(a step that succeeds, one that fails, one that times out), writes the JSON and a README copy with the section
filled into a temporary folder (``--dry-run-dir``), checks both, and exits 0.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import os.path as osp
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
import safe_write  # noqa: E402
from tool_boundary import ToolArgumentParser, float_range, run_tool  # noqa: E402  (the repository on the path first)
SCHEMA = 'bagtricks-gpu-check/1'
BEGIN, END = '<!-- gpu-check:begin -->', '<!-- gpu-check:end -->'
STATUSES = ('ok', 'failed', 'timeout', 'skipped', 'planned')
DET_CONFIG = 'configs/det/faster-rcnn_r50d-cosine_fpn_voc0712.py'
SEG_CONFIG = 'configs/seg/fcn_r50d-cosine_ade20k.py'
CLS_CONFIG = 'configs/cls/resnet50d_efficient.py'


class Step:
    def __init__(self, name: str, what: str, timeout: int, min_s: int = 20):
        self.name, self.what, self.timeout, self.min_s = name, what, timeout, min_s


STEPS = [
    Step('env', 'torch, CUDA, GPUs, OpenMMLab stack, mmcv CUDA ops', 60),
    Step('fp16_scaler', 'MixedPrecisionOptimWrapper auto on the GPU: fp16, scaling, overflow skip, state', 90),
    Step('det_amp', f'train_det --amp, {DET_CONFIG}, batch 2 at 1000x600', 120, 45),
    Step('seg_amp', f'train_seg --amp, {SEG_CONFIG}, batch 4 at 512x512, NCHW and channels-last', 150, 60),
    Step('bench_data', 'benchmark_data --device cuda: nvjpeg vs CPU workers', 120, 40),
    Step('bench_e2e', 'benchmark_e2e on CUDA: pretrain.py vs a plain loop, fp16 + channels-last', 180, 60),
    Step('nccl', '2-process nccl pretraining = 1 process with the same global batch', 150, 60),
]
PROBES = [Step('_probe_ok', 'plumbing probe: a step that succeeds', 60),
          Step('_probe_fail', 'plumbing probe: a step that fails', 60),
          Step('_probe_timeout', 'plumbing probe: a step that outlives its timeout', 3, 1)]


# ===================================================================================================
# the driver
# ===================================================================================================
class GpuMemory:
    """``nvidia-smi`` streaming memory.used of every GPU (MiB) every 0.2 s; the peak since :meth:`reset`."""

    def __init__(self):
        self.current: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.proc = None
        if shutil.which('nvidia-smi') is None:
            return
        self.proc = subprocess.Popen(['nvidia-smi', '--query-gpu=index,memory.used', '--format=csv,noheader,nounits',
                                      '-lms', '200'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.5)

    def _read(self):
        for line in self.proc.stdout:
            try:
                index, used = (int(v) for v in line.split(','))
            except ValueError:
                continue
            self.current[index] = used
            self.peak[index] = max(self.peak.get(index, 0), used)

    def reset(self) -> dict[int, int]:
        self.peak = dict(self.current)
        return dict(self.current)

    def since(self, baseline: dict[int, int]) -> dict | None:
        if self.proc is None or not self.peak:
            return None
        return dict(peak_used_mib=max(self.peak.values()),
                    above_idle_mib=max(v - baseline.get(i, 0) for i, v in self.peak.items()),
                    per_gpu_mib={str(i): v for i, v in sorted(self.peak.items())})

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def child_env() -> dict:
    path = os.pathsep.join([REPO] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED='1', PYTHON=sys.executable)


def run_step(step: Step, work: str, timeout: float, memory: GpuMemory | None) -> dict:
    """Run ``step`` in a child process with ``timeout``; its record (status, figures, checks, memory, error)."""
    folder = osp.join(work, step.name)
    os.makedirs(folder, exist_ok=True)
    result = osp.join(folder, 'result.json')
    cmd = [sys.executable, osp.abspath(__file__), '--child', step.name, '--work', folder, '--result', result,
           '--timeout', f'{timeout:.0f}']
    record = dict(name=step.name, what=step.what, command=f'tools/gpu_check.py --child {step.name}',
                  timeout_s=round(timeout), status='failed', seconds=0.0, figures={}, checks={}, peak_gpu=None,
                  error=None)
    baseline = memory.reset() if memory else {}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own process group: a timeout kills it all
    try:
        output, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        timed_out = True
    record['seconds'] = round(time.monotonic() - start, 1)
    record['peak_gpu'] = memory.since(baseline) if memory else None
    with open(osp.join(folder, 'output.log'), 'w') as f:  # a scratch log in the temporary work dir
        f.write(output or '')
    if osp.isfile(result):
        with open(result) as f:
            data = json.load(f)
        record['figures'], record['checks'] = data.get('figures', {}), data.get('checks', {})
        if data.get('skipped'):
            record.update(status='skipped', error=data['skipped'])
            return record
    tail = [line for line in (output or '').strip().splitlines() if line.strip()][-12:]
    if timed_out:
        record.update(status='timeout', error=f'no result within {timeout:.0f} s; last output: '
                                               f'{tail[-1] if tail else "(none)"}')
    elif proc.returncode != 0:
        last = next((line for line in reversed(tail) if re.match(r'^\w*(Error|Exception|error)\b', line)),
                    tail[-1] if tail else '(no output)')
        record.update(status='failed', error=f'exit {proc.returncode}: {last}', output_tail='\n'.join(tail))
    elif not osp.isfile(result):
        record.update(status='failed', error='the step wrote no result file')
    else:
        failed = [k for k, v in record['checks'].items() if not v]
        record.update(status='failed' if failed else 'ok',
                      error=f'checks failed: {", ".join(failed)}' if failed else None)
    return record


def machine(doc_steps: list[dict]) -> dict:
    from device_caps import read_cpuinfo
    env = next((s['figures'] for s in doc_steps if s['name'] == 'env' and s['figures']), {})
    if not env.get('torch'):
        try:
            import torch
            env = dict(env, torch=torch.__version__, cuda=torch.version.cuda if torch.cuda.is_available() else None)
        except ImportError:
            pass
    return dict(gpu=env.get('gpu'), gpus=env.get('gpus', 0), driver=env.get('driver'), capability=env.get('capability'),
                cpu=read_cpuinfo()[0], cores=os.cpu_count(), torch=env.get('torch'), cuda=env.get('cuda'),
                python=sys.version.split()[0])


def document(steps: list[dict], budget: float, elapsed: float, dry_run: bool, out: str, plumbing=None) -> dict:
    doc = dict(schema=SCHEMA, date=datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), dry_run=dry_run,
               budget_s=budget, elapsed_s=round(elapsed, 1),
               out=osp.relpath(out, REPO) if out and osp.abspath(out).startswith(REPO + os.sep) else out,
               machine=machine(steps), steps=steps)
    if plumbing is not None:
        doc['plumbing'] = plumbing
    return doc


def check_document(doc: dict) -> None:
    """The JSON's schema: raise ValueError naming the first thing that does not fit."""
    def need(cond, what):
        if not cond:
            raise ValueError(f'gpu_check JSON: {what}')
    need(isinstance(doc, dict) and doc.get('schema') == SCHEMA, f'schema is not {SCHEMA}')
    for key, kind in (('date', str), ('dry_run', bool), ('budget_s', (int, float)), ('elapsed_s', (int, float)),
                      ('machine', dict), ('steps', list)):
        need(isinstance(doc.get(key), kind), f'{key} missing or not {kind}')
    for key in ('gpu', 'gpus', 'cpu', 'torch', 'cuda', 'driver'):
        need(key in doc['machine'], f'machine.{key} missing')
    for s in doc['steps'] + doc.get('plumbing', []):
        need(isinstance(s, dict), 'a step is not an object')
        for key, kind in (('name', str), ('what', str), ('status', str), ('seconds', (int, float)),
                          ('figures', dict), ('checks', dict)):
            need(isinstance(s.get(key), kind), f'step {s.get("name")}: {key} missing or not {kind}')
        need(s['status'] in STATUSES, f'step {s["name"]}: status {s["status"]!r}')
        need(s['status'] in ('ok', 'planned') or isinstance(s.get('error'), str),
             f'step {s["name"]}: {s["status"]} without an error')
        need(s.get('peak_gpu') is None or isinstance(s['peak_gpu'], dict), f'step {s["name"]}: peak_gpu')


# ---------------------------------------------------------------------------------------------------
# the README section
# ---------------------------------------------------------------------------------------------------
def _f(x, fmt='.0f'):
    return format(x, fmt) if isinstance(x, (int, float)) and math.isfinite(x) else '?'


def summary(step: dict) -> str:
    """One table cell: the step's figures in words (never raises: a figure of an unexpected shape is shown raw)."""
    try:
        return _summary(step)
    except (KeyError, TypeError, ValueError, AttributeError):
        return json.dumps(step.get('figures'), sort_keys=True, default=str)[:300] + (
            f"; {step['error']}" if step.get('error') else '')


def _summary(step: dict) -> str:
    f = step['figures']
    if step['status'] not in ('ok', 'failed') or not f:
        return step.get('error') or step['what']
    name = step['name']
    if name == 'env':
        text = (f"{f.get('gpu')} x{f.get('gpus')} (compute capability {f.get('compute_capability')}); torch "
                f"{f.get('torch')}, mmcv {f.get('mmcv')} (CUDA ops {'ok' if f.get('mmcv_cuda_ops') else 'missing'}); "
                f"deterministic mode: {f.get('deterministic_mode')}")
    elif name == 'fp16_scaler':
        ips = f.get('img_s', {})
        text = (f"auto -> {f.get('amp_dtype')}; overflow step skipped {f.get('overflow_skipped')}, scale "
                f"{_f(f.get('scale_before'), 'g')} -> {_f(f.get('scale_after'), 'g')}; scaler state restored "
                f"{f.get('state_restored')}; ResNet-50-D batch 64: "
                + ', '.join(f'{k} {_f(v)} img/s' for k, v in ips.items()))
    elif name == 'det_amp':
        text = (f"{f.get('amp')}; {_f(f.get('iter_s'), '.3f')} s/iter ({_f(f.get('img_s'), '.1f')} img/s), losses "
                f"finite {f.get('finite')}, validation {f.get('validated')}")
    elif name == 'seg_amp':
        text = (f"{f.get('amp')}; NCHW {_f(f.get('nchw_iter_s'), '.3f')} s/iter, channels-last "
                f"{_f(f.get('channels_last_iter_s'), '.3f')} s/iter; losses finite {f.get('finite')}")
    elif name == 'bench_data':
        text = (f"nvjpeg decode + crop + photometric {_f(f.get('nvjpeg_img_s'))} img/s; CPU worker side "
                f"{_f(f.get('worker_img_s_per_core'))} img/s/core; ResNet-50-D fp16 training "
                f"{_f(f.get('train_img_s'))} img/s needs {_f(f.get('cores_to_feed'), '.1f')} worker cores")
    elif name == 'bench_e2e':
        text = (f"pretrain.py {_f(f.get('tool_img_s'))} img/s, plain loop {_f(f.get('plain_img_s'))} img/s: "
                f"{_f(f.get('ratio'), '.2f')}x ({f.get('precision')}, channels-last, batch {f.get('batch')})")
    elif name == 'nccl':
        text = (f"max weight difference {_f(f.get('max_diff'), '.1e')}, {_f(f.get('relative'), '.1e')} of the "
                f"training's change ({f.get('world_size')} processes)")
    else:
        text = json.dumps(f, sort_keys=True)[:200]
    return text + (f"; {step['error']}" if step.get('error') else '')


def memory_cell(step: dict) -> str:
    mem, torch_peak = step.get('peak_gpu'), step['figures'].get('torch_peak_mib')
    parts = []
    if mem:
        parts.append(f"{mem['peak_used_mib']:,} MiB used ({mem['above_idle_mib']:,} above idle)")
    if isinstance(torch_peak, (int, float)):
        parts.append(f'torch {torch_peak:,.0f} MiB')
    return ', '.join(parts) or '-'


def render_section(doc: dict) -> str:
    m = doc['machine']
    head = (f"`make gpu-check` ({'dry run, no GPU' if doc['dry_run'] else 'measured'}) on "
            f"{m.get('gpu') or 'no GPU'}" + (f" x{m['gpus']}" if m.get('gpus') else '') +
            (f", driver {m['driver']}" if m.get('driver') else '') +
            f"; CPU {m.get('cpu')}, {m.get('cores')} cores; torch {m.get('torch') or '?'}, "
            f"CUDA {m.get('cuda') or '-'}; "
            f"{doc['date']}, {doc['elapsed_s']:.0f} s of the {doc['budget_s']:.0f} s budget"
            + (f"; figures in `{doc['out']}`" if doc.get('out') else '') + '.')
    rows = ['| step | status | figures | peak GPU memory | time |', '|---|---|---|---|---|']
    for s in doc['steps']:
        cell = summary(s).replace('|', '/').replace('\n', ' ')
        rows.append(f"| `{s['name']}` | {s['status']} | {cell} | {memory_cell(s)} | {s['seconds']:.0f} s |")
    return '\n'.join([head, ''] + rows)


def fill_readme(text: str, section: str) -> str:
    """``text`` with everything between the gpu-check markers replaced by ``section``."""
    return safe_write.replace_marked_section(text, BEGIN, END, section, 'README')


def write_readme(path: str, section: str) -> None:
    """Only the marked section of README changes (the writing layer's rule for a file the user owns)."""
    safe_write.write_marked_section(path, BEGIN, END, section, 'README')


# ---------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='The first GPU machine\'s check: fp16 scaler path, det/seg --amp, '
                                                 'benchmarks on CUDA, nccl; one JSON and a README section')
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'gpu_check.json'), help='the JSON file')
    parser.add_argument('--readme', default=osp.join(REPO, 'README.md'),
                        help='README whose gpu-check section is filled')
    parser.add_argument('--budget', type=float_range(1, 86400), default=480.0,
                        help='seconds for all steps together (default 480)')
    parser.add_argument('--steps', help=f'comma list of steps (default all: {",".join(s.name for s in STEPS)})')
    parser.add_argument('--dry-run', action='store_true', help='the plumbing only, as on a machine without CUDA')
    parser.add_argument('--dry-run-dir', help='where the dry run writes its JSON and README copy (default: a '
                                              'temporary folder, removed)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--work', help=argparse.SUPPRESS)
    parser.add_argument('--result', help=argparse.SUPPRESS)
    parser.add_argument('--timeout', type=float_range(1, 86400), default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [s.name for s in STEPS]
    args.selected = names if not args.steps else args.steps.split(',')
    unknown = [n for n in args.selected if n not in names]
    if unknown:
        parser.error(f'--steps: unknown {", ".join(unknown)}; expected some of {", ".join(names)}')
    return args


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def dry_run(args, reason: str) -> int:
    print(f'{reason}: dry run of the plumbing (nothing is measured; {args.out} and {args.readme} are not written)')
    steps = [s for s in STEPS if s.name in args.selected]
    print('steps, in order, each a subprocess with a timeout, within a budget of '
          f'{args.budget:.0f} s:')
    for s in steps:
        print(f'  {s.name:<12} {s.timeout:>4} s  {s.what}')
    own = args.dry_run_dir is None
    tmp = args.dry_run_dir or tempfile.mkdtemp(prefix='bagtricks_gpu_check_')
    os.makedirs(tmp, exist_ok=True)
    try:
        start = time.monotonic()
        plumbing = [run_step(p, osp.join(tmp, 'work'), p.timeout, None) for p in PROBES]
        expected = {'_probe_ok': 'ok', '_probe_fail': 'failed', '_probe_timeout': 'timeout'}
        for p in plumbing:
            error = f': {p["error"]}' if p['error'] else ''
            print(f'  plumbing {p["name"]}: {p["status"]} ({p["seconds"]:.1f} s){error}')
        wrong = [p['name'] for p in plumbing if p['status'] != expected[p['name']]]
        planned = [dict(name=s.name, what=s.what, command=f'tools/gpu_check.py --child {s.name}', timeout_s=s.timeout,
                        status='planned', seconds=0.0, figures={}, checks={}, peak_gpu=None, error=None) for s in steps]
        out = osp.join(tmp, 'gpu_check.json')
        doc = document(planned, args.budget, time.monotonic() - start, True, out, plumbing)
        check_document(doc)
        safe_write.write_json(out, doc, what='gpu_check JSON')
        with open(out) as f:
            check_document(json.load(f))
        section = render_section(doc)
        readme_copy = osp.join(tmp, 'README.md')
        shutil.copyfile(args.readme, readme_copy)
        write_readme(readme_copy, section)
        with open(args.readme, encoding='utf-8') as f:
            before = f.read()
        with open(readme_copy, encoding='utf-8') as f:
            after = f.read()
        outside = lambda t: (t[:t.index(BEGIN)], t[t.index(END):])  # noqa: E731
        if outside(before) != outside(after) or section.strip() not in after:
            raise RuntimeError('README rendering changed text outside the gpu-check markers')
        print(f'JSON ({SCHEMA}) and README section checked in {tmp}; the section would read:\n{section}')
        if wrong:
            print(f'error: plumbing probes ended otherwise than expected: {", ".join(wrong)}', file=sys.stderr)
            return 1
        return 0
    finally:
        if own:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    if args.dry_run:
        return dry_run(args, '--dry-run')
    if not cuda_available():
        return dry_run(args, 'no CUDA on this machine (torch.cuda.is_available() is False)')
    safe_write.check_output(args.out, '--out file')  # before minutes of work: the file may be written
    with open(args.readme, encoding='utf-8') as f:
        fill_readme(f.read(), '')  # and README has the markers
    memory = GpuMemory()
    work = tempfile.mkdtemp(prefix='bagtricks_gpu_check_')
    start, steps = time.monotonic(), []
    try:
        for step in (s for s in STEPS if s.name in args.selected):
            left = args.budget - (time.monotonic() - start) - 5  # 5 s to write the results
            if left < step.min_s:
                steps.append(dict(name=step.name, what=step.what, command='', timeout_s=0, status='skipped',
                                  seconds=0.0, figures={}, checks={}, peak_gpu=None,
                                  error=f'not started: {max(left, 0):.0f} s of the budget left, it needs {step.min_s}'))
            else:
                steps.append(run_step(step, work, min(step.timeout, left), memory))
            s = steps[-1]
            print(f'[{time.monotonic() - start:5.0f} s] {s["name"]}: {s["status"]} ({s["seconds"]:.0f} s) - '
                  f'{summary(s)}', flush=True)
    finally:
        memory.close()
        shutil.rmtree(work, ignore_errors=True)
    doc = document(steps, args.budget, time.monotonic() - start, False, args.out)
    check_document(doc)
    safe_write.write_json(args.out, doc, what='--out file')
    write_readme(args.readme, render_section(doc))
    print(f'wrote {args.out} and the gpu-check section of {args.readme}')
    return 0


# ===================================================================================================
# the steps (child mode: python tools/gpu_check.py --child NAME --work DIR --result FILE --timeout S)
# ===================================================================================================
def child_main(args) -> int:
    deadline = time.monotonic() + args.timeout - 3
    fn = CHILDREN[args.child]
    out = dict(figures={}, checks={})
    try:
        fn(args.work, deadline, out)
    finally:  # what was measured before a failure is kept
        safe_write.write_json(args.result, out, what='step result')
    return 0


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left < 5:
        raise TimeoutError('the step\'s time is used up')
    return left


def _run(cmd: list[str], deadline: float, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=_left(deadline), **kw)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-3000:])
        sys.stderr.write(proc.stderr[-5000:])
        raise RuntimeError(f'{" ".join(osp.relpath(c, REPO) if c.startswith(REPO) else c for c in cmd[:3])} '
                           f'failed (exit {proc.returncode})')
    return proc


def _probe_ok(work, deadline, out):
    out['figures'] = dict(probe=1.0)
    out['checks'] = dict(probe_ran=True)


def _probe_fail(work, deadline, out):
    out['figures'] = dict(measured_before_failing=1.0)
    raise RuntimeError('planted failure of the plumbing probe')


def _probe_timeout(work, deadline, out):
    time.sleep(60)


def _env(work, deadline, out):
    import torch
    f, c = out['figures'], out['checks']
    f.update(torch=torch.__version__, cuda=torch.version.cuda, gpus=torch.cuda.device_count())
    c['cuda_available'] = torch.cuda.is_available()
    if c['cuda_available']:
        props = torch.cuda.get_device_properties(0)
        f.update(gpu=props.name, compute_capability=f'{props.major}.{props.minor}',
                 memory_mib=props.total_memory // 2 ** 20)
    if shutil.which('nvidia-smi'):
        smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=30)
        f['driver'] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    from device_caps import amp_choice, capability_line
    f['capability'] = capability_line()
    f['auto'] = amp_choice('auto')[0]
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmseg'):
        try:
            f[name] = __import__(name).__version__
        except Exception as e:  # noqa: BLE001 -- recorded, the other steps say what it breaks
            f[name] = None
            f[f'{name}_error'] = f'{type(e).__name__}: {e}'[:300]
        c[f'{name}_imports'] = f[name] is not None
    try:
        from mmcv.ops import nms
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32, device='cuda')
        keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device='cuda'), 0.5)[1]
        f['mmcv_cuda_ops'] = keep.tolist() == [0, 2]
    except Exception as e:  # noqa: BLE001
        f['mmcv_cuda_ops'] = False
        f['mmcv_cuda_ops_error'] = f'{type(e).__name__}: {e}'[:300]
    c['mmcv_cuda_ops'] = f['mmcv_cuda_ops']
    # randomness.deterministic=True makes mmengine call torch.use_deterministic_algorithms(True); torch documents
    # that on CUDA this refuses AdaptiveAvgPool2d's backward (the classifier's pooling) and cuBLAS without
    # CUBLAS_WORKSPACE_CONFIG. Recorded, not a check: whether the project's deterministic runs work on this GPU
    try:
        torch.use_deterministic_algorithms(True)
        x = torch.randn(2, 8, 7, 7, device='cuda', requires_grad=True)
        torch.nn.Linear(8, 4).cuda()(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)).sum().backward()
        torch.cuda.synchronize()
        f['deterministic_mode'] = 'ok'
    except RuntimeError as e:
        f['deterministic_mode'] = ' '.join(str(e).split())[:300]
    finally:
        torch.use_deterministic_algorithms(False)


def _fp16_scaler(work, deadline, out, batch: int = 64, size: int = 224, iters: int = 13, device: str = 'cuda'):
    """(The keyword arguments let the same code run small on a CPU, as its test of plumbing does.)"""
    import copy

    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import engine  # noqa: F401  (MixedPrecisionOptimWrapper)
    from classification import MODELS
    f, c = out['figures'], out['checks']
    cfg = Config.fromfile(osp.join(REPO, CLS_CONFIG))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).train()  # ResNet-50-D, channels-last as shipped
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

    def wrapper(**kw):
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        optim_cfg.optimizer.lr = 0.1 * batch / 256
        optim_cfg.update(kw)
        return build_optim_wrapper(model, optim_cfg)

    auto = wrapper()
    f.update(amp_dtype=auto.amp_dtype, reason=auto.amp_reason, scale_initial=auto.loss_scaler.get_scale())
    c['auto_is_fp16'] = auto.amp_dtype == 'fp16'
    c['loss_scaling_on'] = auto.loss_scaler.is_enabled()
    model.train_step(dict(inputs=x, data_samples=y), auto)  # a first step (it may overflow and halve the scale)
    f['scale_before'] = auto.loss_scaler.get_scale()
    params = [p.detach().clone() for p in model.parameters()]
    with auto.optim_context(model):
        loss = model(x, y, mode='loss')
    auto.backward(sum(v for k, v in loss.items() if 'loss' in k))
    grad = next(p for p in model.parameters() if p.grad is not None).grad
    grad[(0,) * grad.ndim] = float('inf')  # (a channels-last gradient has no flat view)
    auto.step()
    auto.zero_grad()
    f['scale_after'] = auto.loss_scaler.get_scale()
    f['overflow_skipped'] = all(torch.equal(a, p) for a, p in zip(params, model.parameters()))
    c['overflow_skipped'] = f['overflow_skipped']
    c['scale_halved'] = f['scale_after'] == f['scale_before'] / 2
    state = auto.state_dict()
    again = wrapper()
    again.load_state_dict(copy.deepcopy(state))
    f['state_restored'] = 'loss_scaler' in state and again.loss_scaler.state_dict() == state['loss_scaler']
    c['state_restored'] = f['state_restored']
    f['img_s'] = {}
    for dtype in ('fp16', 'bf16', 'fp32'):  # training speed of each precision, same model and batch
        w = wrapper(amp_dtype=dtype)
        times = []
        for i in range(iters):
            sync()
            t0 = time.perf_counter()
            model.train_step(dict(inputs=x, data_samples=y), w)
            sync()
            if i >= min(3, iters - 1):
                times.append(time.perf_counter() - t0)
        f['img_s'][dtype] = batch / statistics.median(times)
        _left(deadline)
    if device == 'cuda':
        f['torch_peak_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20


# ---- generated data (the GPU machine has no Debian data packages) ------------------------------------------------
def _photo(rng, width: int, height: int):
    """A photo-like image: smooth colour fields, a few shapes, sensor noise (compresses as photos do)."""
    import numpy as np
    from PIL import Image, ImageDraw
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        w, h = int(rng.integers(width // 6, width // 2)), int(rng.integers(height // 6, height // 2))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        boxes.append((x0 + 1, y0 + 1, x0 + w, y0 + h))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (height, width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), boxes


def make_imagenet(root: str, classes: int, per_class: dict, seed: int = 0, unique: int = 256) -> str:
    """``root/{split}/n<class>/*.JPEG`` at 400-500 px; past ``unique`` images, files are copies of earlier ones
    (decoding costs the same; writing 2,000 distinct JPEGs would cost tens of seconds of the budget)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    written = []
    for split, n in per_class.items():
        for c in range(classes):
            folder = osp.join(root, split, f'n{c:08d}')
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                path = osp.join(folder, f'{split}_{c}_{i:04d}.JPEG')
                if len(written) >= unique:
                    shutil.copyfile(written[len(written) % unique], path)
                    written.append(path)
                    continue
                long_side = int(rng.integers(400, 501))
                short = int(long_side * rng.uniform(0.66, 0.8))
                img, _ = _photo(rng, long_side, short) if rng.uniform() < 0.7 else _photo(rng, short, long_side)
                img.save(path, quality=90)
                written.append(path)
    return root


VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
               'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')


def make_voc0712(root: str, n: int = 4, seed: int = 0) -> str:
    """``root/VOCdevkit``: VOC2007 trainval + test, VOC2012 trainval, 500 x 375 JPEGs with VOC XML boxes."""
    import numpy as np
    rng = np.random.default_rng(seed)
    devkit = osp.join(root, 'VOCdevkit')
    for year, split, count in (('VOC2007', 'trainval', n), ('VOC2012', 'trainval', n), ('VOC2007', 'test', 1)):
        sub = osp.join(devkit, year)
        for d in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(sub, d), exist_ok=True)
        ids = []
        for i in range(count):
            img_id = f'{split}_{i:06d}' if year == 'VOC2007' else f'2012_{i:06d}'
            img, boxes = _photo(rng, 500, 375)
            img.save(osp.join(sub, 'JPEGImages', f'{img_id}.jpg'), quality=92)
            objects = ''.join(
                f'<object><name>{VOC_CLASSES[int(rng.integers(len(VOC_CLASSES)))]}</name><pose>Unspecified</pose>'
                f'<truncated>0</truncated><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>'
                f'<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>' for b in boxes)
            with open(osp.join(sub, 'Annotations', f'{img_id}.xml'), 'w') as fh:
                fh.write(f'<annotation><folder>{year}</folder><filename>{img_id}.jpg</filename><size><width>500</width>'
                         f'<height>375</height><depth>3</depth></size><segmented>0</segmented>{objects}</annotation>')
            ids.append(img_id)
        with open(osp.join(sub, 'ImageSets', 'Main', f'{split}.txt'), 'w') as fh:
            fh.write(''.join(f'{i}\n' for i in ids))
    return devkit + os.sep


def make_ade(root: str, n_train: int = 8, seed: int = 0) -> str:
    """``root/ADEChallengeData2016`` of 683 x 512 JPEGs with label maps (ADE20K values 1-150, 0 other)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    data_root = osp.join(root, 'ADEChallengeData2016')
    for split, prefix, n in (('training', 'ADE_train', n_train), ('validation', 'ADE_val', 1)):
        img_dir, ann_dir = osp.join(data_root, 'images', split), osp.join(data_root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(n):
            img, _ = _photo(rng, 683, 512)
            small = rng.integers(0, 151, (4, 6), dtype=np.uint8)
            label = Image.fromarray(small, mode='L').resize((683, 512), Image.NEAREST)
            img.save(osp.join(img_dir, f'{prefix}_{i + 1:08d}.jpg'), quality=92)
            label.save(osp.join(ann_dir, f'{prefix}_{i + 1:08d}.png'))
    return data_root


def random_backbone(work: str) -> str:
    """A ResNet-50-D backbone file of random weights for --pretrained (the det/seg configs name an export)."""
    import torch

    from backbones.registry import MODELS
    torch.manual_seed(0)
    state = MODELS.build(dict(type='BagResNet', depth=50, variant='D')).state_dict()
    path = osp.join(work, 'backbone.pth')
    safe_write.write_with(path, lambda tmp: torch.save(state, tmp), what='backbone file')
    return path


def _scalars(work_dir: str) -> list[dict]:
    import glob
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def _train_figures(work_dir: str, batch: int, log: str) -> dict:
    train = [r for r in _scalars(work_dir) if 'loss' in r and 'time' in r]
    steady = [r['time'] for r in train[1:]] or [r['time'] for r in train]  # the first holds cudnn's autotuning
    amp = re.search(r'mixed precision: ([^(]+) \(', log)
    return dict(iters=len(train), iter_s=statistics.median(steady) if steady else None,
                img_s=batch / statistics.median(steady) if steady else None,
                finite=bool(train) and all(math.isfinite(v) for r in train for k, v in r.items() if 'loss' in k),
                torch_peak_mib=max((r.get('memory', 0) for r in train), default=None),
                amp=amp.group(1).strip() if amp else 'no mixed-precision line in the log')


def _det_amp(work, deadline, out):
    devkit = make_voc0712(osp.join(work, 'data'))
    work_dir = osp.join(work, 'run')
    options = [f'train_dataloader.dataset.dataset.datasets.0.data_root={devkit}',
               f'train_dataloader.dataset.dataset.datasets.1.data_root={devkit}',
               f'val_dataloader.dataset.data_root={devkit}', f'test_dataloader.dataset.data_root={devkit}',
               'train_cfg._delete_=True', 'train_cfg.type=IterBasedTrainLoop', 'train_cfg.max_iters=4',
               'train_cfg.val_interval=4', 'default_hooks.checkpoint.by_epoch=False', 'log_processor.by_epoch=False',
               'default_hooks.logger.interval=1']
    proc = _run([sys.executable, osp.join(REPO, 'tools', 'train_det.py'), DET_CONFIG, '--amp', '--pretrained',
                 random_backbone(work), '--work-dir', work_dir, '--cfg-options', *options], deadline)
    f = _train_figures(work_dir, 2, proc.stdout + proc.stderr)
    f['validated'] = osp.isfile(osp.join(work_dir, 'val_results.json'))
    out['figures'] = f
    out['checks'] = dict(fp16=f['amp'].startswith('fp16'), four_iterations=f['iters'] == 4, finite=f['finite'],
                         validated=f['validated'])


def _seg_amp(work, deadline, out):
    data_root, backbone = make_ade(osp.join(work, 'data')), random_backbone(work)
    f, c = out['figures'], out['checks']
    for name, cl in (('nchw', False), ('channels_last', True)):
        work_dir = osp.join(work, f'run_{name}')
        options = [f'{k}.dataset.data_root={data_root}' for k in ('train_dataloader', 'val_dataloader',
                                                                     'test_dataloader')]
        options += ['train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.logger.interval=1',
                    f'model.backbone.channels_last={cl}']
        proc = _run([sys.executable, osp.join(REPO, 'tools', 'train_seg.py'), SEG_CONFIG, '--amp', '--pretrained',
                     backbone, '--work-dir', work_dir, '--cfg-options', *options], deadline)
        run = _train_figures(work_dir, 4, proc.stdout + proc.stderr)
        f[f'{name}_iter_s'], f[f'{name}_img_s'] = run['iter_s'], run['img_s']
        f['torch_peak_mib'] = max(f.get('torch_peak_mib') or 0, run['torch_peak_mib'] or 0)
        f['amp'] = run['amp']
        f['finite'] = f.get('finite', True) and run['finite']
        c[f'{name}_four_iterations'] = run['iters'] == 4
    c['fp16'], c['finite'] = f['amp'].startswith('fp16'), f['finite']


def _bench_data(work, deadline, out):
    data = make_imagenet(osp.join(work, 'data'), 4, {'train': 16})
    result = osp.join(work, 'bench_data.json')
    proc = _run([sys.executable, osp.join(REPO, 'tools', 'benchmark_data.py'), '--device', 'cuda', '--data', data,
                 '--images', '64', '--rounds', '3', '--cores', f'{os.cpu_count()}', '--out', result], deadline)
    with open(result) as fh:
        r = json.load(fh)
    cuda, worker = r.get('cuda') or {}, r['paths']['worker side']['img_s']
    out['figures'] = dict(first_line=proc.stdout.splitlines()[0] if proc.stdout else '',
                          nvjpeg_img_s=cuda.get('nvjpeg_img_s'), train_img_s=cuda.get('train_img_s'),
                          worker_img_s_per_core=worker,
                          whole_device_mode_img_s_per_core=r['paths']['whole, device mode']['img_s'],
                          cores_to_feed=(cuda.get('train_img_s') or 0) / worker if worker else None)
    out['checks'] = dict(nvjpeg_ran=bool(cuda.get('nvjpeg_img_s')))


def _bench_e2e(work, deadline, out):
    batch, iters = 64, 30
    data = make_imagenet(osp.join(work, 'data'), 8, {'train': -(-batch * iters // 8), 'val': 1})
    workers = max(2, min(12, (os.cpu_count() or 2) - 2))
    proc = _run([sys.executable, osp.join(REPO, 'tools', 'benchmark_e2e.py'), '--data', data, '--batch', str(batch),
                 '--workers', str(workers), '--iters', str(iters), '--skip', '10', '--rounds', '1',
                 '--channels-last', 'on'], deadline)
    row = re.search(r'^on\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x', proc.stdout, re.M)
    wait = re.search(r'data wait per iteration \(median of runs\): ([\d.]+) s', proc.stdout)
    value = (lambda i: float(row.group(i)) if row else None)  # noqa: E731
    out['figures'] = dict(first_line=proc.stdout.splitlines()[0], batch=batch, workers=workers,
                          precision=('fp16 + loss scaling' if 'amp_dtype=auto -> fp16' in proc.stdout
                                     else 'see first_line'),
                          tool_img_s=value(1), plain_img_s=value(2), ratio=value(3),
                          tool_data_wait_s=float(wait.group(1)) if wait else None)
    out['checks'] = dict(table_parsed=row is not None)


NCCL_CONFIG = """_base_ = {base!r}
model = dict(num_classes=4, backbone=dict(depth=18, variant='D', norm_eval=True))
train_dataloader = dict(batch_size={batch}, num_workers=2, persistent_workers=False, drop_last=True,
                        dataset=dict(data_root={data!r}, pipeline=[
                            dict(type='torchvision/Resize', size=64, antialias=True),
                            dict(type='torchvision/CenterCrop', size=64),
                            dict(type='torchvision/ToDtype', dtype='float32', scale=False),
                            dict(type='torchvision/Normalize', mean=[123.68, 116.779, 103.939],
                                 std=[58.393, 57.12, 57.375])]))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best=None, max_keep_ckpts=-1))
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0, deterministic=False)  # the data order is seeded; nothing else is random here
"""


def _nccl(work, deadline, out):
    import torch
    gpus = torch.cuda.device_count()
    if gpus < 2:
        out['skipped'] = f'{gpus} GPU on this machine: the nccl check needs 2'
        out['figures'] = dict(gpus=gpus)
        return
    from safe_read import load_training_state
    data = make_imagenet(osp.join(work, 'data'), 4, {'train': 16})
    base = osp.join(REPO, 'configs', 'cls', 'resnet50_baseline.py')
    os.environ['NVIDIA_TF32_OVERRIDE'] = '0'  # no TF32 in either run: they differ only in summation order
    runs = {}
    for name, nproc, batch in (('one', 1, 16), ('two', 2, 8)):
        cfg = osp.join(work, f'{name}.py')
        with open(cfg, 'w') as fh:
            fh.write(NCCL_CONFIG.format(base=base, batch=batch, data=data))
        work_dir = osp.join(work, name)
        if nproc == 1:
            _run([sys.executable, osp.join(REPO, 'tools', 'pretrain.py'), cfg, '--work-dir', work_dir], deadline)
        else:
            proc = _run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), 'pretrain', cfg, '2', '--work-dir',
                         work_dir], deadline)
            out['figures']['distributed_logged'] = 'Distributed training: True' in proc.stdout
        runs[name] = {k: load_training_state(osp.join(work_dir, f'epoch_{e}.pth'))['state_dict'] for e, k in
                      ((1, 'start'), (2, 'end'))}

    def max_diff(a, b):
        return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    diff, moved = max_diff(runs['one']['end'], runs['two']['end']), max_diff(runs['one']['end'], runs['one']['start'])
    out['figures'].update(world_size=2, gpus=gpus, max_diff=diff, moved=moved, relative=diff / moved if moved else None)
    out['checks'] = dict(trained=moved > 1e-4, equal=diff <= 1e-4 * moved,
                         distributed=out['figures'].get('distributed_logged', False))


CHILDREN = {'env': _env, 'fp16_scaler': _fp16_scaler, 'det_amp': _det_amp, 'seg_amp': _seg_amp,
            'bench_data': _bench_data, 'bench_e2e': _bench_e2e, 'nccl': _nccl,
            '_probe_ok': _probe_ok, '_probe_fail': _probe_fail, '_probe_timeout': _probe_timeout}

if __name__ == '__main__':
    sys.exit(run_tool(main))
