"""Training and ONNX export for modelgate's Fashion-MNIST models.

Entry point: ``/usr/bin/python3 models/train.py`` (see models/README.md).
"""
