"""The four Fashion-MNIST architectures.

Every network takes ``image`` = pixel/255 as float32 [batch, 1, 28, 28] and
does its own mean/std normalisation, so the serving contract is only /255.
``forward`` returns logits (plus attention weights for the attention models);
``export.ExportWrapper`` adds the softmax that ships inside the ONNX graph.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Fashion-MNIST training-set pixel statistics (of pixel/255).
MEAN = 0.2860
STD = 0.3530


class Normalize(nn.Module):
    def forward(self, x):
        return (x - MEAN) / STD


class FashionCNN(nn.Module):
    """3 conv blocks (conv-BN-ReLU, max-pool) + dense head."""

    has_attention = False

    def __init__(self):
        super().__init__()
        self.norm = Normalize()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            block(1, 32), nn.MaxPool2d(2),        # 32 x 14 x 14
            block(32, 64), nn.MaxPool2d(2),       # 64 x 7 x 7
            block(64, 128), nn.MaxPool2d(2, ceil_mode=False),  # 128 x 3 x 3
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 3 * 3, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.head(self.features(self.norm(x)))


class FashionLSTM(nn.Module):
    """Rows as a sequence: 28 steps x 28 features -> one LSTM layer -> dense."""

    has_attention = False

    def __init__(self, hidden=128, bidirectional=True):
        super().__init__()
        self.norm = Normalize()
        self.lstm = nn.LSTM(28, hidden, num_layers=1, batch_first=True,
                            bidirectional=bidirectional)
        width = hidden * (2 if bidirectional else 1)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(width * 2, 10))

    def forward(self, x):
        seq = self.norm(x).reshape(-1, 28, 28)          # [B, 28 rows, 28 px]
        out, _ = self.lstm(seq)                          # [B, 28, width]
        # last step + mean over steps: both directions see the whole image.
        feat = torch.cat([out[:, -1, :], out.mean(dim=1)], dim=1)
        return self.head(feat)


class SelfAttention(nn.Module):
    """Multi-head self-attention written with MatMul + Softmax so the ONNX
    graph is plain ops and the weights can be returned."""

    def __init__(self, dim, heads, tokens):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.tokens = tokens
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def forward(self, x):
        t, h, d = self.tokens, self.heads, self.head_dim
        qkv = self.qkv(x).reshape(-1, t, 3, h, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                 # [B, H, T, d]
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(attn, v)                      # [B, H, T, d]
        out = out.permute(0, 2, 1, 3).reshape(-1, t, h * d)
        return self.proj(out), attn


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, tokens, mlp_ratio=2, dropout=0.1):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, tokens)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(dim * mlp_ratio, dim), nn.Dropout(dropout),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        a, w = self.attn(self.ln1(x))
        x = x + self.drop(a)
        x = x + self.mlp(self.ln2(x))
        return x, w


class FashionAttention(nn.Module):
    """Small ViT: non-overlapping patches -> linear embedding, class token,
    learned positional embedding, pre-norm encoder layers, class-token head.

    ``attention`` output: last layer's attention from the class token to each
    patch, averaged over heads and renormalised over the patches (the class
    token's weight on itself is dropped), so each row sums to 1.
    """

    has_attention = True

    def __init__(self, patch=4, dim=64, depth=4, heads=4, dropout=0.1):
        super().__init__()
        self.patch = patch
        self.grid = 28 // patch
        self.num_patches = self.grid * self.grid
        tokens = self.num_patches + 1
        self.norm = Normalize()
        self.embed = nn.Conv2d(1, dim, patch, stride=patch)  # == linear patch embedding
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, tokens, dropout=dropout) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)
        self.dim = dim

    def forward(self, x):
        p = self.embed(self.norm(x))                     # [B, D, g, g]
        p = p.flatten(2).transpose(1, 2)                 # [B, N, D] row-major patches
        cls = self.cls.expand(p.shape[0], -1, -1)
        z = torch.cat([cls, p], dim=1) + self.pos
        w = None
        for layer in self.layers:
            z, w = layer(z)
        logits = self.head(self.ln(z[:, 0]))
        a = w[:, :, 0, 1:].mean(dim=1)                   # [B, N]
        a = a / a.sum(dim=-1, keepdim=True)
        return logits, a


class FashionHybrid(nn.Module):
    """Conv feature maps -> 14-step sequence (one step per 2-pixel band of
    rows) -> bidirectional LSTM -> additive self-attention pooling -> dense.

    ``attention`` output: the pooling weights over the 14 steps, i.e. over
    horizontal bands of the image from top (0) to bottom (13)."""

    has_attention = True

    def __init__(self, hidden=64, bidirectional=True):
        super().__init__()
        self.norm = Normalize()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(1, 32), nn.MaxPool2d(2),            # 32 x 14 x 14
            block(32, 64), nn.MaxPool2d((1, 2)),      # 64 x 14 x 7
            block(64, 64),                            # 64 x 14 x 7
        )
        self.seq_len = 14
        self.lstm = nn.LSTM(64 * 7, hidden, batch_first=True, bidirectional=bidirectional)
        width = hidden * (2 if bidirectional else 1)
        self.width = width
        self.score = nn.Sequential(nn.Linear(width, 64), nn.Tanh(), nn.Linear(64, 1))
        self.head = nn.Sequential(nn.Linear(width, 128), nn.ReLU(inplace=True),
                                  nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x):
        f = self.features(self.norm(x))                  # [B, 64, 14, 7]
        s = f.permute(0, 2, 1, 3).reshape(-1, self.seq_len, 64 * 7)   # [B, 14, 448]
        h, _ = self.lstm(s)                              # [B, 14, width]
        e = self.score(h)                                # [B, 14, 1]
        w = torch.softmax(e, dim=1)                      # over the sequence
        pooled = torch.matmul(w.transpose(1, 2), h).reshape(-1, self.width)
        return self.head(pooled), w.reshape(-1, self.seq_len)


ARCHS = {
    "fashion-cnn": FashionCNN,
    "fashion-lstm": FashionLSTM,
    "fashion-attention": FashionAttention,
    "fashion-hybrid": FashionHybrid,
}
