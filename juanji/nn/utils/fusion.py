"""Fold batch normalisation into the convolution before it, for inference; fuse each ReLU
into the convolution or batch norm before it, for training and inference.

In eval mode BatchNorm2d is a per-channel affine map, y = x * s + (beta - mean * s) with
s = gamma / sqrt(running_var + eps). When x is a convolution's output the map folds into that
convolution: W' = W * s (one scale per output channel) and b' = (b - mean) * s + beta. The
folded model gives the same outputs up to float rounding and skips one full pass over every
normalised activation.

A ReLU or hardswish that alone reads a Conv2d's output (a ReLU also a BatchNorm2d's) can run
inside that layer's pass (`fuse_activations`): on each block of the conv's product while it is
in cache, or in batch norm's affine pass. The fused model computes the same bits, forward and
backward, with one pass over each such activation fewer.
"""

import copy

import numpy as np

from juanji import function
from juanji.grad_mode import no_grad
from juanji.nn.layers.conv import Conv2d
from juanji.nn.layers.linear import Identity
from juanji.nn.layers.norm import BatchNorm2d
from juanji.nn.module import Parameter
from juanji.tensor import as_tensor


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w=None, bn_b=None):
    """Folded (weight, bias) arrays of a conv followed by an eval-mode batch norm.

    conv_w: (OC, C/G, KH, KW); conv_b, bn_rm, bn_rv, bn_w, bn_b: (OC,) or None (no conv bias;
    an affine-free batch norm has weight 1 and bias 0). Computed in float64, returned in
    conv_w's dtype: weight (OC, C/G, KH, KW), bias (OC,).
    """
    scale = 1 / np.sqrt(np.asarray(bn_rv, np.float64) + bn_eps)  # (OC,)
    if bn_w is not None:
        scale = scale * bn_w
    shift = 0.0 if bn_b is None else np.asarray(bn_b, np.float64)
    conv_b = 0.0 if conv_b is None else np.asarray(conv_b, np.float64)
    weight = conv_w * scale.reshape(-1, 1, 1, 1)
    bias = (conv_b - bn_rm) * scale + shift
    return weight.astype(conv_w.dtype), bias.astype(conv_w.dtype)


def fuse_conv_bn_eval(conv, bn):
    """A copy of Conv2d `conv` with the eval-mode BatchNorm2d `bn` that follows it folded in."""
    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn_eval needs conv and bn in eval mode; call .eval() first")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fuse_conv_bn_eval needs a batch norm with running statistics "
                         "(track_running_stats=True)")
    fused = copy.deepcopy(conv)
    weight, bias = fuse_conv_bn_weights(
        conv.weight.data, None if conv.bias is None else conv.bias.data,
        bn.running_mean.data, bn.running_var.data, bn.eps,
        None if bn.weight is None else bn.weight.data, None if bn.bias is None else bn.bias.data)
    fused.weight, fused.bias = Parameter(weight), Parameter(bias)
    return fused


def fold_batch_norms(model, example_input, rtol=1e-4, atol=1e-4):
    """A copy of the eval-mode `model` with every BatchNorm2d that reads a Conv2d's output
    folded into that conv (the conv replaced by its fused copy, the batch norm by Identity).

    The pairs are found by running `example_input` (N, C, H, W) once and matching each batch
    norm's input to the conv output it is. A conv or batch norm called more than once is left
    alone. A model that knows its graph (an imported OnnxModule: `model.readers(name)`) folds
    only a conv whose output nothing but the batch norm reads. Because a conv's output might
    also be read by something that is not a module, the folded copy is run on `example_input`
    too and every output (one Tensor or a tuple) must match the original's within rtol/atol
    (relative to that output's largest magnitude); otherwise ValueError. `model` is not
    changed.
    """
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode; call model.eval() first")
    folded = copy.deepcopy(model)
    modules = dict(folded.named_modules())
    calls = []  # (name, input, output) in call order; keeps the tensors alive, so ids are unique
    hooks = [module.register_forward_hook(
        lambda mod, inputs, out, name=name: calls.append((name, inputs[0], out)))
        for name, module in modules.items() if isinstance(module, (Conv2d, BatchNorm2d))]
    example_input = as_tensor(example_input)
    with no_grad():
        reference = _outputs(folded(example_input))
    for hook in hooks:
        hook.remove()
    times_called = {}
    for name, _, _ in calls:
        times_called[name] = times_called.get(name, 0) + 1
    conv_outputs = {id(out): name for name, _, out in calls if isinstance(modules[name], Conv2d)}
    for name, inp, _ in calls:
        conv_name = conv_outputs.get(id(inp))
        bn = modules[name]
        if (conv_name is None or not isinstance(bn, BatchNorm2d) or times_called[name] > 1
                or times_called[conv_name] > 1 or bn.running_mean is None):
            continue
        if hasattr(folded, "readers") and folded.readers(conv_name) != [name]:
            continue  # the graph reads the conv's output elsewhere too
        _replace(folded, conv_name, fuse_conv_bn_eval(modules[conv_name], bn))
        _replace(folded, name, Identity())
    with no_grad():
        got = _outputs(folded(example_input))
    for index, (new, old) in enumerate(zip(got, reference)):
        err = float(np.abs(new - old).max(initial=0.0))
        bound = atol + rtol * float(np.abs(old).max(initial=0.0))
        if not err <= bound:
            which = f" {index}" if len(reference) > 1 else ""
            raise ValueError(f"folding batch norms changed the model's output{which} by "
                             f"{err:.3g} (allowed {bound:.3g}): a conv output is also read "
                             f"outside the batch norm")
    return folded


def fuse_activations(model, example_input):
    """Fuse each ReLU or hardswish into the Conv2d (either) or BatchNorm2d (ReLU) layer whose
    output it alone reads; in place, returns `model`. Training, inference and `state_dict` are
    unchanged: the layer's `fused_activation` makes it return the activation of its output
    from its own pass (see Conv2d and BatchNorm2d), and the F.relu or F.hardswish call after it
    (in a ReLU or Hardswish layer, or an imported ONNX graph's node) passes that through.

    The pairs are found by running `example_input` (N, C, H, W) once in eval mode without
    gradients (nothing is updated; each module's mode is restored) and following every op
    call: the activation's input must be the output of a Conv2d or BatchNorm2d layer that
    forward calls once, read by no other op and not a model output. A shared ReLU layer
    (ResNet's blocks call one twice) fuses where its input qualifies and runs as usual
    elsewhere. The search assumes forward takes the same path for other inputs and in training
    mode, as a traced or exported graph does. A fused layer's output, and what its forward
    hooks see, is the activation's. The fused model is run on `example_input` again and must
    give the same bits; otherwise every flag is cleared and ValueError is raised.
    """
    from juanji.ops.activation import Hardswish, Relu

    kinds = {Relu: "relu", Hardswish: "hardswish"}
    modules = dict(model.named_modules())
    producers = {name: module for name, module in modules.items()
                 if type(module) in (Conv2d, BatchNorm2d)}
    made = {}  # id(output) -> (producer name, output); keeps the tensors alive (unique ids)
    hooks = [module.register_forward_hook(
        lambda mod, inputs, out, name=name: made.setdefault(id(out), []).append((name, out)))
        for name, module in producers.items()]
    reads, activations, kept = {}, [], []  # activations: (kind, input tensor) per op call

    def record(fn, inputs, params, out):
        kept.append(inputs)
        for tensor in inputs:
            if tensor is not None:
                reads[id(tensor)] = reads.get(id(tensor), 0) + 1
        if type(fn) in kinds:
            activations.append((kinds[type(fn)], inputs[0]))

    modes = {module: module.training for module in modules.values()}
    previous, function._tracer = function._tracer, record
    try:
        model.eval()
        example_input = as_tensor(example_input)
        with no_grad():
            outputs = model(example_input)
            reference = _outputs(outputs)
    finally:
        function._tracer = previous
        for hook in hooks:
            hook.remove()
        for module, mode in modes.items():
            module.training = mode
    times_called = {}
    for calls in made.values():
        for name, _ in calls:
            times_called[name] = times_called.get(name, 0) + 1
    returned = {id(o) for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))}
    fused = []
    for kind, tensor in activations:
        calls = made.get(id(tensor), [])
        if len(calls) != 1 or reads.get(id(tensor)) != 1 or id(tensor) in returned:
            continue
        module = producers[calls[0][0]]
        if times_called[calls[0][0]] == 1 and (kind == "relu" or isinstance(module, Conv2d)):
            module.fused_activation = kind
            fused.append(module)
    try:
        model.eval()
        with no_grad():
            got = _outputs(model(example_input))
    finally:
        for module, mode in modes.items():
            module.training = mode
    if not all(np.array_equal(new, old, equal_nan=True) for new, old in zip(got, reference)):
        for module in fused:
            module.fused_activation = None
        raise ValueError("fusing activations changed the model's output: an activation's "
                         "input is also read outside juanji's ops; the model is left unfused")
    return model


def _outputs(out):
    """A model's output (a Tensor or a tuple of them) as a tuple of arrays."""
    return tuple(o.data for o in out) if isinstance(out, (tuple, list)) else (out.data,)


def _replace(root, dotted_name, module):
    """Set the submodule at `dotted_name` (e.g. 'layer1.0.bn1') of `root` to `module`."""
    parent_name, _, attr = dotted_name.rpartition(".")
    parent = root
    for part in parent_name.split(".") if parent_name else ():
        parent = getattr(parent, part)
    setattr(parent, attr, module)
