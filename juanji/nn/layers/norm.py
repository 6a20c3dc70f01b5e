"""Normalisation layers: BatchNorm1d/2d, LayerNorm, GroupNorm, LocalResponseNorm.

State-dict keys follow PyTorch: weight, bias, running_mean, running_var, num_batches_tracked.
"""

import numbers

import numpy as np

from juanji.distributed import sync_bn, world
from juanji.nn import functional as F
from juanji.nn.args import probability, single
from juanji.nn.layers.activation import mark_activated
from juanji.nn.module import Module, Parameter
from juanji.ops.memory import check_fits
from juanji.ops.norm import per_channel_affine

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "LocalResponseNorm",
           "SyncBatchNorm"]


def _check_eps(eps):
    if not isinstance(eps, numbers.Real) or eps <= 0:
        raise ValueError(f"eps must be a number > 0; got {eps!r}")
    return float(eps)


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d: per-channel (axis 1) normalisation.

    Training: normalise with the batch statistics and, if track_running_stats, update
    running_mean / running_var with `momentum` (None = cumulative average over all batches so
    far: momentum = 1 / num_batches_tracked). Eval: normalise with the running statistics, or
    with batch statistics when track_running_stats=False.

    fused_activation (None; 'relu' when set by nn.utils.fuse_activations, not saved in the
    state dict): forward returns relu(batch_norm(x)) from the same pass; the F.relu after it
    passes it through.
    """

    floating_input = True
    fused_activation = None

    _ranks = ()
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32, *, bias=True):
        super().__init__()
        self.num_features = single(num_features, "num_features")
        self.eps = _check_eps(eps)
        self.momentum = None if momentum is None else probability(momentum, "momentum")
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = self.num_features
        check_fits((c,), dtype, f"num_features={c}", kind="weight")
        self.weight = Parameter(np.ones(c, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(c, dtype=dtype)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, dtype=dtype))
            self.register_buffer("running_var", np.ones(c, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, x):
        out = self.forward_with(x, self.fused_activation)
        return out if self.fused_activation is None else mark_activated(out,
                                                                        self.fused_activation)

    def forward_with(self, x, activation=None):
        """batch_norm(x), then the activation (None or 'relu') in the same pass: forward
        without the mark that a fused_activation of the layer's own gives (nn.layers.chain
        calls this)."""
        if x.ndim not in self._ranks:
            raise ValueError(f"{type(self).__name__} expects a {self._layout} input; got shape "
                             f"{tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects "
                             f"{self.num_features} channels in dim 1; got shape {tuple(x.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch = self.training or self.running_mean is None
        update = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if update else None,
                            self.running_var if update else None, self.weight, self.bias,
                            use_batch, factor, self.eps, fused_activation=activation)

    def eval_affine(self, dtype):
        """(scale, shift), each (num_features,) in `dtype`: the vectors this layer's eval-mode
        pass multiplies and adds (ops.norm.per_channel_affine), for a conv before it to apply
        in its own pass with the same bits; None in training mode or without running
        statistics (it then normalises by the batch)."""
        if self.training or self.running_mean is None:
            return None
        weight = None if self.weight is None else self.weight.data
        bias = None if self.bias is None else self.bias.data
        _, scale, shift = per_channel_affine(self.running_mean.data, self.running_var.data,
                                             weight, bias, self.eps, np.dtype(dtype))
        return scale, shift

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}"
                + ("" if self.fused_activation is None
                   else f", fused_activation={self.fused_activation}"))


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over N (and L), per channel C."""

    _ranks = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H, W, per channel C."""

    _ranks = (4,)
    _layout = "(N, C, H, W)"


class LayerNorm(Module):
    """Normalise over the trailing dims `normalized_shape`; weight ones, bias zeros of that shape.

    (*, D1, ..., Dk) -> same shape; statistics per leading index, biased variance.
    """

    floating_input = True

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        shape = tuple(normalized_shape)
        if not shape or not all(isinstance(n, numbers.Integral) and n >= 1 for n in shape):
            raise ValueError(f"normalized_shape must be a positive int or a non-empty sequence "
                             f"of them; got {normalized_shape!r}")
        self.normalized_shape = tuple(int(n) for n in shape)
        check_fits(self.normalized_shape, dtype, f"normalized_shape={normalized_shape!r}",
                   kind="weight")
        self.eps = _check_eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        affine = self.elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype)) if affine else None
        self.bias = (Parameter(np.zeros(self.normalized_shape, dtype=dtype))
                     if affine and bias else None)

    def reset_parameters(self):
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Normalise (N, C, *) over groups of num_channels / num_groups channels; affine per channel.

    num_groups=1 normalises each sample over all of C and space; num_groups=C is instance norm
    with a per-channel affine.
    """

    floating_input = True

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32, *,
                 bias=True):
        super().__init__()
        self.num_groups = single(num_groups, "num_groups")
        self.num_channels = single(num_channels, "num_channels")
        if num_channels % num_groups:
            raise ValueError(f"num_channels must be divisible by num_groups; got "
                             f"num_channels={num_channels}, num_groups={num_groups}")
        self.eps = _check_eps(eps)
        self.affine = bool(affine)
        self.weight = Parameter(np.ones(num_channels, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype=dtype)) if affine and bias else None

    def reset_parameters(self):
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm expects an (N, {self.num_channels}, *) input; got "
                             f"shape {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LocalResponseNorm(Module):
    """x / (k + alpha/size * sum of x^2 over `size` neighbouring channels) ** beta (AlexNet)."""

    floating_input = True

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = single(size, "size")
        self.alpha, self.beta, self.k = float(alpha), float(beta), float(k)

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics span the global batch of all MPI ranks.

    Same arguments as BatchNorm2d; inputs (N, C, *) of 2 to 5 dims, N this rank's slice. In
    training, per-channel sums are allreduced (see `juanji.distributed.sync_bn`), so forward,
    running statistics and gradients equal one process's BatchNorm over the global batch;
    every rank must call it in step. In eval mode, or in a world of one, it is exactly
    BatchNorm2d. `convert_sync_batchnorm(model)` swaps a model's batch norms for it.
    """

    _ranks = (2, 3, 4, 5)
    _layout = "(N, C, *)"

    def forward(self, x):
        if not self.training or world.world_size() == 1:
            return super().forward(x)
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}) expects an "
                             f"(N, {self.num_features}, *) input; got shape {tuple(x.shape)}")
        fn = sync_bn.SyncBatchNorm()
        out = fn.run(x, self.weight, self.bias, eps=self.eps)
        if self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            m = (1.0 / float(self.num_batches_tracked.data) if self.momentum is None
                 else self.momentum)
            rm, rv = self.running_mean.data, self.running_var.data
            unbiased = fn.batch_var.astype(rv.dtype) * rv.dtype.type(fn.count / (fn.count - 1))
            rm[...] = (1 - m) * rm + m * fn.batch_mean.astype(rm.dtype)
            rv[...] = (1 - m) * rv + m * unbiased
        return out

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Replace every BatchNorm1d/2d in `module` (or `module` itself) by a SyncBatchNorm that
        shares its parameters and running statistics; returns the converted module. Only the
        world communicator exists, so process_group must be None."""
        if process_group is not None:
            raise ValueError("process_group must be None: juanji synchronises over all ranks")
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats)
            sync.weight, sync.bias = module.weight, module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(sync, name, getattr(module, name))
            sync.training = module.training
            return sync
        for name, child in list(module.named_children()):
            setattr(module, name, cls.convert_sync_batchnorm(child))
        return module
