# Table 6 "+ label smoothing" for MobileNet (1.0) (paper 72.93 %), as resnet50d_cosine_ls.py: eps = 0.1.
_base_ = './mobilenet_cosine.py'
model = dict(label_smoothing=0.1)
