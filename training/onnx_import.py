"""Start a PyTorch network from a shipped ONNX file of the same architecture (the shipped weights are
the ONNX files; training runs do not outlive a session).

An exported graph holds each convolution with the batch norm after it folded in (weight, bias), in
the order the network runs them. Each conv gets the folded weight; each batch norm is set, on a
batch `x`, to its input's batch statistics (gamma = std, beta = folded bias + mean), so that in
training mode it reproduces the folded conv on that batch and in eval mode exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _run_order(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """Conv2d and BatchNorm2d modules in the order a forward pass on x calls them."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda mod, _args: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
    try:
        model.eval()
        model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    return order


@torch.no_grad()
def init_from_folded_onnx(model: nn.Module, path: Path, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Load `path` into `model` (see the module doc), calibrating its batch norms on `x`.

    The last convolution (the head, no batch norm after it) is copied when its shape matches the
    file's; the file's head weight and bias are returned either way, for a caller whose head has
    other channels. Leaves the model in training mode."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    order = _run_order(model, x)
    convs = [m for m in order if isinstance(m, nn.Conv2d)]
    if len(nodes) != len(convs):
        raise ValueError(f"{path}: {len(nodes)} convolutions, the model has {len(convs)}")
    folded_bias: dict[nn.BatchNorm2d, torch.Tensor] = {}
    for k, (node, conv) in enumerate(zip(nodes[:-1], convs[:-1], strict=True)):
        weight = inits[node.input[1]]
        if weight.shape != conv.weight.shape:
            raise ValueError(f"{path}: convolution {k} is {tuple(weight.shape)}, "
                             f"the model's {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(weight)
        after = order[order.index(conv) + 1]
        if not isinstance(after, nn.BatchNorm2d):
            raise ValueError(f"{path}: convolution {k} is not followed by a batch norm")
        folded_bias[after] = inits[node.input[2]]
    head_w, head_b = inits[nodes[-1].input[1]], inits[nodes[-1].input[2]]
    head = convs[-1]
    if head.weight.shape == head_w.shape:
        head.weight.data.copy_(head_w)
        head.bias.data.copy_(head_b)

    def calibrate(bn: nn.BatchNorm2d, args: tuple[torch.Tensor]) -> None:
        z = args[0]
        mean = z.mean((0, 2, 3))
        var = z.var((0, 2, 3), unbiased=False)
        bn.weight.data = (var + bn.eps).sqrt()
        bn.bias.data = folded_bias[bn] + mean
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)

    hooks = [bn.register_forward_pre_hook(calibrate) for bn in folded_bias]
    model.train()
    model(x)
    for h in hooks:
        h.remove()
    return head_w, head_b
