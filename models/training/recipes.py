"""Per-model training recipes (the single place to tune epochs / lr)."""

RECIPES = {
    "fashion-cnn": dict(
        kwargs=dict(), epochs=12, batch_size=128, lr=3e-3, weight_decay=5e-4,
        augment=("hflip",), clip=None, label_smoothing=0.0,
        target=0.925,
        published="2 conv + pooling + BN 0.934; 2 conv + pooling 0.916 (Fashion-MNIST benchmark table)",
        description="Conv net with batch norm: 3 conv-BN-ReLU-maxpool blocks and 2 dense layers",
    ),
    "fashion-lstm": dict(
        kwargs=dict(hidden=128, bidirectional=False), epochs=10, batch_size=256, lr=4e-3,
        weight_decay=1e-4, augment=(), clip=1.0, label_smoothing=0.0,
        target=0.895,
        published="GRU+SVM 0.888-0.897 (Fashion-MNIST benchmark table; closest recurrent entry)",
        description="LSTM reading the 28 image rows as a 28-step sequence of 28 pixels",
    ),
    "fashion-attention": dict(
        kwargs=dict(patch=7, dim=64, depth=4, heads=4, dropout=0.0), epochs=10, batch_size=256, lr=3e-3,
        weight_decay=5e-2, augment=("hflip",), clip=1.0, label_smoothing=0.0,
        target=0.89,
        published="no transformer entry in the Fashion-MNIST benchmark table; 2 conv + pooling 0.916 for scale",
        description="Small vision transformer (7x7 patches, class token, 4 encoder layers) with class-token attention map",
    ),
    "fashion-hybrid": dict(
        kwargs=dict(hidden=64), epochs=8, batch_size=256, lr=4e-3, weight_decay=1e-4,
        augment=("hflip",), clip=1.0, label_smoothing=0.0,
        target=0.92,
        published="2 conv + pooling + BN 0.934 (closest entry; no conv+LSTM entry in the Fashion-MNIST benchmark table)",
        description="Conv feature maps -> 14-step sequence of row bands -> bidirectional LSTM -> attention pooling -> dense, with attention over the bands",
    ),
}
