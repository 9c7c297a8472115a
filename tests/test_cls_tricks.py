"""Exact-number unit tests of the paper's tricks as implemented by the classification package."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import classification  # noqa: F401  (registers the classifier, schedulers, transforms)
import engine  # noqa: F401  (registers MixedPrecisionOptimWrapper)
from backbones.registry import MODELS
from classification import (PCALighting, distillation_loss, lr_schedule, mixup, sample_mixup, smooth_targets,
                            soft_cross_entropy)
from classification.schedules import scaled_lr
from classification.trick_report import trick_table

CFG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'cls')


def cfg(name):
    return Config.fromfile(osp.join(CFG, name))


# ---------------------------------------------------------------- learning rate
def test_warmup_then_cosine_per_iteration_follows_the_paper():
    c = cfg('resnet50d_cosine.py')            # batch 8 x 128, lr 0.1 per 256, 5 warmup epochs of 120
    ipe = 10
    lrs = lr_schedule(c, iters_per_epoch=ipe, world_size=8)
    eta, m, total = 0.4, 5 * ipe, 120 * ipe
    assert len(lrs) == total
    # lr_i = i * eta / m for batch i = 1..m (iteration index i - 1)
    assert lrs[0] == pytest.approx(eta / m, rel=1e-12)          # 0.008
    assert lrs[m // 2 - 1] == pytest.approx(eta / 2, rel=1e-12)  # batch m/2: 0.2
    assert lrs[m - 1] == pytest.approx(eta, rel=1e-12)            # batch m: 0.4
    for i in range(1, m + 1):
        assert lrs[i - 1] == pytest.approx(i * eta / m, rel=1e-9)
    # eq. (1) after the warmup: eta_t = 0.5 (1 + cos(t pi / T)) eta, T = batches without warmup
    T = total - m
    assert lrs[m] == pytest.approx(eta, rel=1e-12)
    assert lrs[m + T // 2] == pytest.approx(eta / 2, rel=1e-9)    # 0.2 half-way
    for t in (1, 7, 100, 575, 1000, T - 1):
        assert lrs[m + t] == pytest.approx(0.5 * (1 + math.cos(t * math.pi / T)) * eta, rel=1e-9, abs=1e-15)
    assert lrs[-1] == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 1149 / 1150)), rel=1e-9)  # 7.46e-7


def test_baseline_step_decay_and_mixup_epochs():
    lrs = lr_schedule(cfg('resnet50_baseline.py'), iters_per_epoch=3, world_size=8)
    assert len(lrs) == 360
    assert lrs[0] == pytest.approx(0.1) and lrs[89] == pytest.approx(0.1)
    assert lrs[90] == pytest.approx(0.01) and lrs[180] == pytest.approx(0.001) and lrs[270] == pytest.approx(1e-4)
    assert lrs[-1] == pytest.approx(1e-4)
    mix = lr_schedule(cfg('resnet50d_cosine_ls_mixup.py'), iters_per_epoch=2, world_size=8)
    assert len(mix) == 400 and mix[10 + 195] == pytest.approx(0.2, rel=1e-9)  # cosine half-way over 195 epochs


def test_linear_scaling_lr_is_base_times_batch_over_256():
    assert scaled_lr(cfg('resnet50_baseline.py'), world_size=8) == pytest.approx(0.1)      # 8 x 32 = 256
    assert scaled_lr(cfg('resnet50_efficient.py'), world_size=8) == pytest.approx(0.4)     # 8 x 128 = 1024
    assert scaled_lr(cfg('resnet50_efficient.py'), world_size=1) == pytest.approx(0.05)    # 128
    assert lr_schedule(cfg('resnet50_bs1024.py'), 1, world_size=2)[0] == pytest.approx(0.1)  # 256 again


# ---------------------------------------------------------------- label smoothing, mixup
def test_smoothing_target_vector():
    t = smooth_targets(torch.tensor([2, 0]), num_classes=5, eps=0.1)
    assert torch.allclose(t, torch.tensor([[0.025, 0.025, 0.9, 0.025, 0.025],
                                           [0.9, 0.025, 0.025, 0.025, 0.025]]))
    assert torch.equal(smooth_targets(torch.tensor([1]), 3, 0.0), torch.tensor([[0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match='eps'):
        smooth_targets(torch.tensor([0]), 3, 1.0)


def test_mixup_images_and_smoothed_targets():
    x = torch.arange(3 * 2 * 2 * 2, dtype=torch.float32).view(3, 2, 2, 2)
    targets = smooth_targets(torch.tensor([0, 1, 2]), 3, eps=0.1)  # rows [.9 .05 .05], [.05 .9 .05], ...
    perm = torch.tensor([2, 0, 1])
    xm, tm = mixup(x, targets, 0.3, perm)
    assert torch.allclose(xm, 0.3 * x + 0.7 * x[perm])
    assert torch.allclose(xm[0], 0.3 * x[0] + 0.7 * x[2])
    assert torch.allclose(tm, torch.tensor([[0.305, 0.05, 0.645],    # 0.3*[.9,.05,.05] + 0.7*[.05,.05,.9]
                                            [0.645, 0.305, 0.05],    # 0.3*[.05,.9,.05] + 0.7*[.9,.05,.05]
                                            [0.05, 0.645, 0.305]]))  # 0.3*[.05,.05,.9] + 0.7*[.05,.9,.05]
    assert torch.allclose(tm.sum(1), torch.ones(3))
    torch.manual_seed(0)
    lams = [sample_mixup(8, 0.2)[0] for _ in range(2000)]
    assert all(0.0 <= lam <= 1.0 for lam in lams)
    assert sum(lams) / len(lams) == pytest.approx(0.5, abs=0.03)                     # Beta(.2,.2) mean
    assert sum(min(lam, 1 - lam) < 0.1 for lam in lams) / len(lams) > 0.5           # mass near 0 and 1


def tiny_classifier(**kw):
    backbone = dict(type='BagResNet', depth=18, variant='D', base_channels=8, stem_channels=16, out_indices=(3,),
                    init='xavier')
    return MODELS.build(dict(type='BagClassifier', backbone=backbone, num_classes=4, **kw))


def test_classifier_loss_uses_one_lambda_per_batch_and_smoothed_targets():
    model = tiny_classifier(label_smoothing=0.1, mixup_alpha=0.2).train()
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.manual_seed(3)
    loss = model.loss(x, y)['loss']
    torch.manual_seed(3)
    lam, perm = sample_mixup(6, 0.2)
    xm, tm = mixup(x, smooth_targets(y, 4, 0.1), lam, perm)
    expected = -(tm * F.log_softmax(model.logits(xm), 1)).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    plain = tiny_classifier()
    plain.load_state_dict(model.state_dict())
    logits = plain.logits(x)
    assert soft_cross_entropy(logits, smooth_targets(y, 4)).item() == pytest.approx(
        F.cross_entropy(logits, y).item(), rel=1e-5)


# ---------------------------------------------------------------- distillation
def test_distillation_loss_matches_formula_by_hand():
    s, t = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True), torch.tensor([[3.0, 2.0, 1.0]], requires_grad=True)
    y = torch.tensor([[0.0, 0.0, 1.0]])
    T, hw = 2.0, 0.5
    soft_max = lambda v: [math.exp(a) / sum(math.exp(b) for b in v) for a in v]  # noqa: E731
    hard = -math.log(soft_max([1, 2, 3])[2])                                      # 0.40761
    p_t, p_s = soft_max([1.5, 1.0, 0.5]), soft_max([0.5, 1.0, 1.5])
    soft = -sum(a * math.log(b) for a, b in zip(p_t, p_s))
    expected = hw * hard + (1 - hw) * T * T * soft
    loss = distillation_loss(s, y, t, temperature=T, hard_weight=hw)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(0.5 * 0.40761 + 0.5 * 4 * 1.34035, rel=1e-4)  # 2.88450
    loss.backward()
    assert s.grad is not None and t.grad is None       # no gradient flows into the teacher


def test_teacher_is_frozen_eval_mode_and_not_saved(tmp_path):
    teacher_cfg = tmp_path / 'teacher.py'
    teacher_cfg.write_text(f"_base_ = '{CFG}/resnet152d_teacher.py'\n"
                           "model = dict(num_classes=4, backbone=dict(depth=18, base_channels=8, stem_channels=16))\n")
    teacher = MODELS.build(Config.fromfile(str(teacher_cfg)).model)
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, tmp_path / 't.pth')
    student = tiny_classifier(distill=dict(teacher_config=str(teacher_cfg), teacher_checkpoint=str(tmp_path / 't.pth'),
                                           temperature=20.0, hard_weight=0.5)).train()
    assert not student.teacher.training and student.teacher.backbone.variant == 'D'
    assert all(torch.equal(a, b) for a, b in zip(student.teacher.state_dict().values(),
                                                 teacher.state_dict().values()))
    assert {k.split('.')[0] for k in student.state_dict()} == {'backbone', 'head'}
    n_student = sum(1 for _ in tiny_classifier().parameters())
    assert sum(1 for _ in student.parameters()) == n_student
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    before = {k: v.clone() for k, v in student.teacher.state_dict().items()}
    student.loss(x, y)['loss'].backward()
    assert all(p.grad is None for p in student.teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in student.teacher.state_dict().items())  # BN stats untouched
    with pytest.raises(ValueError, match='4 classes'):
        tiny_classifier().__class__(backbone=dict(type='BagResNet', depth=18, out_indices=(3,)), num_classes=5,
                                    distill=dict(teacher_config=str(teacher_cfg),
                                                 teacher_checkpoint=str(tmp_path / 't.pth')))


# ---------------------------------------------------------------- init, zero gamma, no bias decay
def test_no_bias_decay_parameter_groups_for_resnet50d():
    c = cfg('resnet50d_efficient.py')
    model = MODELS.build(c.model)
    ours = {id(p) for p in model.parameters()}  # mmengine adds one bookkeeping group (a 0-d tensor) for base_lr
    groups = [g for g in build_optim_wrapper(model, c.optim_wrapper).param_groups if id(g['params'][0]) in ours]
    assert len(groups) == 167
    decayed = [g for g in groups if g['weight_decay'] == pytest.approx(1e-4)]
    undecayed = [g for g in groups if g['weight_decay'] == 0]
    # 55 convs (3 stem + 16 blocks x 3 + 4 downsample) + FC weight; 55 BNs x (gamma, beta) + FC bias
    assert sum(len(g['params']) for g in decayed) == 56
    assert sum(len(g['params']) for g in undecayed) == 111
    assert all(g['nesterov'] and g['momentum'] == 0.9 for g in groups)
    base = cfg('resnet50_baseline.py')
    groups = build_optim_wrapper(MODELS.build(base.model), base.optim_wrapper).param_groups
    assert len(groups) == 1 and len(groups[0]['params']) == 161 and groups[0]['weight_decay'] == 1e-4  # 53 convs


def test_zero_gamma_and_xavier_come_from_the_config():
    model = MODELS.build(cfg('resnet50d_efficient.py').model)
    last = [blk.last_bn().weight for blk in model.backbone.residual_blocks()]
    assert len(last) == 16 and all(float(w.detach().abs().max()) == 0.0 for w in last)
    fc = model.head.fc
    bound = math.sqrt(6 / (2048 + 1000))   # Xavier uniform a = sqrt(6 / (d_in + d_out)) = 0.04437
    assert float(fc.weight.detach().abs().max()) <= bound and float(fc.weight.detach().abs().max()) > 0.95 * bound
    assert float(fc.bias.abs().max()) == 0.0
    baseline = MODELS.build(cfg('resnet50_baseline.py').model)
    assert all(float(blk.last_bn().weight.min()) == 1.0 for blk in baseline.backbone.residual_blocks())


# ---------------------------------------------------------------- PCA lighting
def test_pca_lighting():
    img = torch.rand(3, 8, 8) * 255
    assert torch.equal(PCALighting(alphastd=0.0)(img), img)
    torch.manual_seed(0)
    out = PCALighting(alphastd=0.1)(img)
    torch.manual_seed(0)
    alpha = torch.randn(3) * 0.1
    eigval = torch.tensor([0.2175, 0.0188, 0.0045]) * 255
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
    shift = out - img
    assert torch.allclose(shift, (eigvec @ (alpha * eigval)).view(3, 1, 1).expand(3, 8, 8), atol=1e-4)
    with pytest.raises(TypeError, match='float'):
        PCALighting()(torch.zeros(3, 4, 4, dtype=torch.uint8))


# ---------------------------------------------------------------- configs: one change per row
ROWS = [  # child, parent, trick-table rows that differ
    ('resnet50_bs1024.py', 'resnet50_baseline.py', {'batch', 'linear lr scaling'}),
    ('resnet50_bs1024_warmup.py', 'resnet50_bs1024.py', {'lr warmup'}),
    ('resnet50_bs1024_warmup_zerogamma.py', 'resnet50_bs1024_warmup.py', {'zero gamma'}),
    ('resnet50_bs1024_warmup_zerogamma_nobiasdecay.py', 'resnet50_bs1024_warmup_zerogamma.py', {'no bias decay'}),
    ('resnet50_efficient.py', 'resnet50_bs1024_warmup_zerogamma_nobiasdecay.py', {'mixed precision'}),
    ('resnet50b_efficient.py', 'resnet50_efficient.py', {'backbone'}),
    ('resnet50c_efficient.py', 'resnet50b_efficient.py', {'backbone'}),
    ('resnet50d_efficient.py', 'resnet50c_efficient.py', {'backbone'}),
    ('resnet50d_cosine.py', 'resnet50d_efficient.py', {'lr decay'}),
    ('resnet50d_cosine_ls.py', 'resnet50d_cosine.py', {'label smoothing'}),
    ('resnet50d_cosine_ls_kd.py', 'resnet50d_cosine_ls.py', {'distillation'}),
    ('resnet50d_cosine_ls_mixup.py', 'resnet50d_cosine_ls.py', {'mixup', 'epochs'}),
    ('resnet50d_tricks.py', 'resnet50d_cosine_ls_mixup.py', {'distillation'}),
    ('resnet152d_teacher.py', 'resnet50d_cosine_ls.py', {'backbone'}),
    ('resnet50b_baseline.py', 'resnet50_baseline.py', {'backbone'}),
    # the Fashion-MNIST scale chain repeats the paper's rows (tools/transfer_grid.py)
    ('fashion_d_efficient.py', 'fashion_b_standard.py',
     {'backbone', 'batch', 'linear lr scaling', 'lr warmup', 'zero gamma', 'no bias decay', 'mixed precision'}),
    ('fashion_d_cosine.py', 'fashion_d_efficient.py', {'lr decay'}),
    ('fashion_d_cosine_ls.py', 'fashion_d_cosine.py', {'label smoothing'}),
    ('fashion_d_cosine_ls_kd.py', 'fashion_d_cosine_ls.py', {'distillation'}),
    ('fashion_d_cosine_ls_mixup.py', 'fashion_d_cosine_ls.py', {'mixup', 'epochs'}),
    ('fashion_d_tricks.py', 'fashion_d_cosine_ls_mixup.py', {'distillation'}),
    ('fashion_teacher.py', 'fashion_d_cosine_ls.py', {'backbone'}),
]


@pytest.mark.parametrize('child,parent,changed', ROWS, ids=[r[0] for r in ROWS])
def test_each_config_changes_one_trick_of_its_parent(child, parent, changed):
    a, b = dict(trick_table(cfg(child), 8)), dict(trick_table(cfg(parent), 8))
    assert {k for k in a if a[k] != b[k]} == changed


def test_warmup_of_no_iteration_is_a_clear_error():
    """A fractional-epoch warmup that rounds to 0 iterations (tiny data) names the problem instead of
    dividing by zero."""
    from classification.schedules import LinearWarmupLR
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match='covers no step'):
        LinearWarmupLR.build_iter_from_epoch(optimizer, begin=0, end=0.2, epoch_length=3)
    assert LinearWarmupLR.build_iter_from_epoch(optimizer, begin=0, end=0.5, epoch_length=4).start_factor == 0.5
