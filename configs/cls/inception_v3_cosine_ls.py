# Table 6 "+ label smoothing" for Inception-V3 (paper 78.40 %), as resnet50d_cosine_ls.py: eps = 0.1.
_base_ = './inception_v3_cosine.py'
model = dict(label_smoothing=0.1)
