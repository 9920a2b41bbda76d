"""Hook-based MAC counter. FLOPs = 2 x MACs of Conv2d, Linear, LSTM and the
attention matmuls (QK^T, AV); element-wise ops (BN, activations, softmax,
LayerNorm, pooling) are not counted."""
import torch
import torch.nn as nn

from .nets import SelfAttention


def count_macs(model, image):
    macs = [0]
    hooks = []

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        macs[0] += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        macs[0] += out.numel() * m.in_features

    def lstm_hook(m, inp, out):
        x = inp[0]
        steps = x.shape[1] if m.batch_first else x.shape[0]
        batch = x.shape[0] if m.batch_first else x.shape[1]
        dirs = 2 if m.bidirectional else 1
        size_in = m.input_size
        for _layer in range(m.num_layers):
            macs[0] += batch * steps * dirs * 4 * m.hidden_size * (size_in + m.hidden_size)
            size_in = m.hidden_size * dirs

    def attn_hook(m, inp, out):
        x = inp[0]
        b, t = x.shape[0], x.shape[1]
        macs[0] += 2 * b * m.heads * t * t * m.head_dim  # QK^T and AV

    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, nn.LSTM):
            hooks.append(mod.register_forward_hook(lstm_hook))
        elif isinstance(mod, SelfAttention):
            hooks.append(mod.register_forward_hook(attn_hook))
    with torch.no_grad():
        model.eval()
        model(image)
    for h in hooks:
        h.remove()
    return macs[0] // image.shape[0]
