"""Receptive fields: size, jump (effective stride) and start offset, composed layer by layer.

Per spatial axis a layer's units are described in input-pixel coordinates (pixel i has its
centre at i) by three numbers:

- size  r: how many input pixels one unit sees;
- jump  j: the distance, in input pixels, between two neighbouring units (the product of the
  strides so far, the "effective stride");
- start s: the centre of unit 0's field (negative or off-grid when padding shifts it).

A window layer with kernel K, stride S, padding P and dilation D (span K' = D * (K - 1) + 1):

    r_out = r_in + (K' - 1) * j_in
    j_out = j_in * S
    s_out = s_in + ((K' - 1) / 2 - P) * j_in

Two 3x3 convs: r = 1 + 2 + 2 = 5. conv3 -> pool2 (stride 2) -> conv3: r = 3, then 3 + 1 = 4
with j = 2, then 4 + 2 * 2 = 8. Jumps and starts are exact fractions (transposed convs and
upsampling divide the jump).
"""

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor

from juanji.analysis.counting import ZERO_MAC_FAMILIES, nn_classes
from juanji.arithmetic import effective_kernel, same_padding


def _pair(value, name):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(value)
    raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")


def _number(x):
    """A Fraction shown as an int when whole, else as a float."""
    x = Fraction(x)
    return int(x) if x.denominator == 1 else float(x)


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one layer's units, per axis (height, width).

    kind is 'local' (size/jump/start are valid), 'global' (every unit sees the whole input,
    e.g. after Flatten or Linear) or 'unknown' (a layer type whose geometry is not known).
    """

    size: tuple = (Fraction(1), Fraction(1))
    jump: tuple = (Fraction(1), Fraction(1))
    start: tuple = (Fraction(0), Fraction(0))
    kind: str = "local"

    @classmethod
    def input(cls):
        """The input pixels themselves: size 1, jump 1, start 0."""
        return cls()

    @classmethod
    def whole(cls):
        return cls(kind="global")

    @classmethod
    def unknown(cls):
        return cls(kind="unknown")

    @property
    def is_local(self):
        return self.kind == "local"

    def centre(self, i, j):
        """Input-pixel coordinates (y, x) of the centre of unit (i, j)'s field."""
        return (self.start[0] + i * self.jump[0], self.start[1] + j * self.jump[1])

    def box(self, i, j):
        """(top, left, bottom, right) input pixels (inclusive, may lie outside the image)."""
        cy, cx = self.centre(i, j)
        hy, hx = (self.size[0] - 1) / 2, (self.size[1] - 1) / 2
        return (cy - hy, cx - hx, cy + hy, cx + hx)

    def describe(self):
        """'5x5 (jump 1, start 2)', 'whole input' or 'unknown'."""
        if self.kind == "global":
            return "whole input"
        if self.kind == "unknown":
            return "unknown"
        size = "x".join(str(_number(v)) for v in self.size)
        jump = _axes(self.jump)
        start = _axes(self.start)
        return f"{size} (jump {jump}, start {start})"

    def short(self):
        """'5x5', 'all' or '?' for the summary table."""
        if self.kind == "global":
            return "all"
        if self.kind == "unknown":
            return "?"
        return "x".join(str(_number(v)) for v in self.size)

    def jump_short(self):
        """'2' (or '2x1' when the axes differ); '-' unless local."""
        return _axes(self.jump) if self.is_local else "-"

    def to_dict(self):
        if not self.is_local:
            return {"kind": self.kind}
        return {"kind": self.kind, "size": [_number(v) for v in self.size],
                "jump": [_number(v) for v in self.jump],
                "start": [_number(v) for v in self.start]}


def _axes(values):
    a, b = (_number(v) for v in values)
    return str(a) if a == b else f"{a}x{b}"


# ---- pure per-axis rules -------------------------------------------------------------------


def window_axis(size, jump, start, kernel, stride=1, padding=0, dilation=1):
    """(size, jump, start) after a conv or pooling window along one axis (see module doc)."""
    span = effective_kernel(kernel, dilation)
    return (size + (span - 1) * jump, jump * stride,
            start + (Fraction(span - 1, 2) - padding) * jump)


def transposed_axis(size, jump, start, kernel, stride=1, padding=0, dilation=1):
    """(size, jump, start) after a transposed conv along one axis.

    Output o receives input i through tap k when o = i * S - P + k * D. The taps reaching one
    output are those with (o + P - k * D) divisible by S; their input positions are at most
    (k_max - k_min) * D / S apart, and the widest such set (over o mod S) sets the growth.
    Units get closer: j_out = j_in / S; output 0 sits at input (P - (K' - 1) / 2) / S.
    """
    widest = Fraction(0)
    for residue in range(stride):
        taps = [k for k in range(kernel) if (residue + padding - k * dilation) % stride == 0]
        if taps:
            widest = max(widest, Fraction((taps[-1] - taps[0]) * dilation, stride))
    span = effective_kernel(kernel, dilation)
    return (size + widest * jump, Fraction(jump) / stride,
            start + jump * (padding - Fraction(span - 1, 2)) / stride)


def resample_axis(size, jump, start, in_size, out_size, mode="nearest", align_corners=False):
    """(size, jump, start) after resizing in_size -> out_size along one axis.

    nearest reads 1 input unit, (bi)linear 2 neighbours, bicubic 4. With align_corners the
    end points line up; otherwise pixel centres do ((o + 1/2) / scale - 1/2).
    """
    reach = {"nearest": 0, "nearest-exact": 0, "linear": 1, "bilinear": 1, "bicubic": 3}
    if mode not in reach:
        raise ValueError(f"mode must be one of {list(reach)}; got {mode!r}")
    if align_corners and out_size > 1:
        step = Fraction(in_size - 1, out_size - 1)
        return size + reach[mode] * jump, jump * step, start
    step = Fraction(in_size, out_size)
    return (size + reach[mode] * jump, jump * step,
            start + jump * (step / 2 - Fraction(1, 2)))


def adaptive_axis(size, jump, start, in_size, out_size):
    """(size, jump, start) after an adaptive pool: windows [floor(i n/m), ceil((i+1) n/m))."""
    widest = max(ceil((i + 1) * in_size / out_size) - floor(i * in_size / out_size)
                 for i in range(out_size))
    first = ceil(in_size / out_size)
    return (size + (widest - 1) * jump, jump * Fraction(in_size, out_size),
            start + Fraction(first - 1, 2) * jump)


def _both(rf, rule, per_axis_args):
    """Apply a per-axis rule to both axes of a local ReceptiveField."""
    if not rf.is_local:
        return rf
    axes = [rule(rf.size[a], rf.jump[a], rf.start[a], *per_axis_args[a]) for a in (0, 1)]
    return ReceptiveField(tuple(Fraction(x[0]) for x in axes),
                          tuple(Fraction(x[1]) for x in axes),
                          tuple(Fraction(x[2]) for x in axes))


def compose(rf, kernel_size, stride=1, padding=0, dilation=1):
    """rf after a conv/pool window; each argument an int or an (h, w) pair.

    compose(compose(ReceptiveField.input(), 3), 3).size == (5, 5).
    """
    k, s = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    return _both(rf, window_axis, [(k[a], s[a], p[a], d[a]) for a in (0, 1)])


def compose_transposed(rf, kernel_size, stride=1, padding=0, dilation=1):
    """rf after a transposed conv window (see transposed_axis)."""
    k, s = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    return _both(rf, transposed_axis, [(k[a], s[a], p[a], d[a]) for a in (0, 1)])


def walk(layers, rf=None):
    """Receptive fields after each layer spec; a spec is a dict with 'kernel_size' and
    optional 'stride', 'padding', 'dilation' and 'transposed'. Returns a list of fields."""
    rf = ReceptiveField.input() if rf is None else rf
    fields = []
    for spec in layers:
        spec = dict(spec)
        rule = compose_transposed if spec.pop("transposed", False) else compose
        rf = rule(rf, **spec)
        fields.append(rf)
    return fields


def widest(fields):
    """The largest of several fields (where branches merge: add, concat). Unknown wins, then
    global; among local ones the largest area, the later one on ties."""
    best = None
    for rf in fields:
        if rf.kind == "unknown":
            return rf
        if best is None or _rank(rf) >= _rank(best):
            best = rf
    return best


def _rank(rf):
    if rf.kind == "global":
        return (1, 0)
    return (0, rf.size[0] * rf.size[1])


# ---- per-module rules ----------------------------------------------------------------------

_POINTWISE = (ZERO_MAC_FAMILIES["activation"] + ZERO_MAC_FAMILIES["normalization"]
              + ZERO_MAC_FAMILIES["dropout"] + ("Identity", "ChannelShuffle"))
_GLOBAL = ("Flatten", "Unflatten", "Linear")
_WINDOWS = ("Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d")
_ADAPTIVE = ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
_RESAMPLE = ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
_PADS = ("ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d")


def _is(module, names):
    classes = nn_classes(names)
    return bool(classes) and isinstance(module, classes)


def _window_padding(module, kernel, dilation):
    padding = getattr(module, "padding", 0)
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        return tuple(same_padding(k, d)[0] for k, d in zip(kernel, dilation))
    return _pair(padding, "padding")


def layer_receptive_field(module, rf, in_shape=None, out_shape=None):
    """The field of `module`'s output units given the field `rf` of its input.

    in_shape / out_shape are the traced spatial sizes (H, W) (needed for adaptive pools and
    resampling). Unknown layer types give ReceptiveField.unknown().
    """
    if rf.kind == "unknown":
        return rf
    if _is(module, _GLOBAL):
        return ReceptiveField.whole()
    if _is(module, _POINTWISE):
        return rf
    if rf.kind == "global":
        return rf
    if _is(module, _WINDOWS):
        kernel = _pair(module.kernel_size, "kernel_size")
        stride = getattr(module, "stride", None)
        stride = kernel if stride is None else _pair(stride, "stride")
        dilation = _pair(getattr(module, "dilation", 1), "dilation")
        return compose(rf, kernel, stride, _window_padding(module, kernel, dilation), dilation)
    if _is(module, ("ConvTranspose2d",)):
        return compose_transposed(rf, module.kernel_size, module.stride, module.padding,
                                  getattr(module, "dilation", 1))
    if in_shape is None or out_shape is None:
        return ReceptiveField.unknown()
    if _is(module, _ADAPTIVE):
        return _both(rf, adaptive_axis, [(in_shape[a], out_shape[a]) for a in (0, 1)])
    if _is(module, _RESAMPLE):
        mode = getattr(module, "mode", "nearest")
        if _is(module, ("UpsamplingBilinear2d",)):
            mode, align = "bilinear", True
        else:
            align = bool(getattr(module, "align_corners", False))
        return _both(rf, resample_axis,
                     [(in_shape[a], out_shape[a], mode, align) for a in (0, 1)])
    if _is(module, ("PixelShuffle",)):
        return _both(rf, resample_axis, [(in_shape[a], out_shape[a]) for a in (0, 1)])
    if _is(module, ("PixelUnshuffle",)):
        r = module.downscale_factor
        return compose(rf, r, r)
    if _is(module, _PADS):
        left, right, top, bottom = _pad4(module.padding)
        return ReceptiveField(rf.size, rf.jump,
                              (rf.start[0] - top * rf.jump[0], rf.start[1] - left * rf.jump[1]))
    return ReceptiveField.unknown()


def _pad4(padding):
    if isinstance(padding, int):
        return (padding,) * 4
    return tuple(padding)


def receptive_fields(model, input_size, batch_size=1):
    """{layer name: ReceptiveField} for every layer call of `model` on a (C, H, W) input.

    Traced with forward hooks (see juanji.analysis.trace); a layer called twice appears as
    'name' and 'name#2'.
    """
    from juanji.analysis.trace import trace

    return {call.key: call.rf for call in trace(model, input_size, batch_size).calls}
