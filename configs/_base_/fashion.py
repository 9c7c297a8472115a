# Fashion-MNIST facts shared by the cls, det and seg configs at this scale, in one place: the class names in
# label order (experiments/fashion.py writes its folders and VOC names from this list) and the CPU-size
# ResNet widths (ResNet-18 layout at 1/4 width with a 32-channel stem) that pretraining and both transfers use.
fashion_classes = ('tshirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot')
fashion_widths = dict(stem_channels=32, base_channels=16)
