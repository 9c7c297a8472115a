# Table 6 "+ label smoothing": eps = 0.1.
_base_ = './resnet50d_cosine.py'
model = dict(label_smoothing=0.1)
