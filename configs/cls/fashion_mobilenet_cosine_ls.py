# Table 6 "+ label smoothing" for MobileNet at Fashion-MNIST scale (mobilenet_cosine_ls.py): eps = 0.1.
_base_ = './fashion_mobilenet_cosine.py'
model = dict(label_smoothing=0.1)
