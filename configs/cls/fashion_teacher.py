# The distillation teacher at Fashion-MNIST scale (resnet152d_teacher.py: cosine + smoothing, deeper network).
_base_ = './fashion_d_cosine_ls.py'
model = dict(backbone=dict(depth=34))
