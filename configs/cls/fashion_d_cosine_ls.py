# Table 6 "+ label smoothing" at Fashion-MNIST scale (resnet50d_cosine_ls.py).
_base_ = './fashion_d_cosine.py'
model = dict(label_smoothing=0.1)
