"""Step-by-step explanations of one layer's arithmetic: the formula, the numbers put in, the
result, as a student writes it out (the seeds' 28x28 input, 5x5 kernel -> 24x24 example).

    >>> e = explain_conv2d((1, 28, 28), out_channels=30, kernel_size=5)
    >>> print(e.text())
    >>> e.result["output_shape"], e.result["params"]
    ([30, 24, 24], 780)
"""

from dataclasses import dataclass, field
from fractions import Fraction

from juanji.analysis.counting import (
    conv2d_macs,
    conv2d_params,
    conv_transpose2d_macs,
    conv_transpose2d_params,
    flops_from_macs,
)
from juanji.arithmetic import (
    conv_output_size,
    conv_transpose_output_size,
    effective_kernel,
    pool_output_size,
)


@dataclass
class Step:
    title: str
    formula: str
    numbers: str
    value: object
    note: str = ""


@dataclass
class Explanation:
    """What was asked (`heading`), the worked steps and the results as a dict."""

    heading: str
    steps: list = field(default_factory=list)
    result: dict = field(default_factory=dict)

    def text(self):
        lines = [self.heading, ""]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"{number}. {step.title}")
            lines.append(f"     {step.formula}")
            if step.numbers:
                lines.append(f"   = {step.numbers}")
            lines.append(f"   = {_show(step.value)}")
            if step.note:
                lines.append(f"   note: {step.note}")
        return "\n".join(lines)

    def to_dict(self):
        return {"heading": self.heading,
                "steps": [{"title": s.title, "formula": s.formula, "numbers": s.numbers,
                           "value": s.value, "note": s.note} for s in self.steps],
                "result": dict(self.result)}


def _show(value):
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


# ---- validation ----------------------------------------------------------------------------


def _positive(value, name, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def _pair(value, name, minimum=1):
    items = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (tuple, list)) or len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    for item in items:
        _positive(item, name, minimum)
    return tuple(items)


def _input(input_size):
    if not isinstance(input_size, (tuple, list)) or len(input_size) != 3:
        raise ValueError(f"input_size must be (C, H, W); got {input_size!r}")
    for item in input_size:
        _positive(item, "input_size")
    return tuple(input_size)


def _check_fits(size, kernel, padding, dilation, axis, what="kernel"):
    span = effective_kernel(kernel, dilation)
    if span > size + 2 * padding:
        raise ValueError(
            f"{what} {kernel} (dilated span {span}) does not fit the input {axis} {size} "
            f"padded by {padding} on each side ({size + 2 * padding}); use a smaller kernel "
            f"or more padding")


AXES = (("height", "H", "OH"), ("width", "W", "OW"))


def _size_steps(explanation, sizes, kernel, stride, padding, dilation, output, kind):
    """Output height/width steps for a conv or pooling window."""
    for a, (axis, h, oh) in enumerate(AXES):
        k, s, p, d = kernel[a], stride[a], padding[a], dilation[a]
        span = effective_kernel(k, d)
        if kind == "conv" or not explanation.result.get("ceil_mode"):
            formula = f"{oh} = floor(({h} + 2P - D*(K-1) - 1) / S) + 1"
            numbers = f"floor(({sizes[a]} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1"
        else:
            formula = f"{oh} = ceil(({h} + 2P - D*(K-1) - 1) / S) + 1"
            numbers = f"ceil(({sizes[a]} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1"
        note = ""
        if d == 1:
            exact = Fraction(sizes[a] + 2 * p - k, s) + 1
            note = (f"with dilation 1 this is the seeds' ({h} + 2P - K) / S + 1 = "
                    f"({sizes[a]} + {2 * p} - {k}) / {s} + 1 = {_fraction(exact)}")
        left = (sizes[a] + 2 * p - span) % s
        if left and not explanation.result.get("ceil_mode"):
            note += (f"; {sizes[a] + 2 * p - span} is not a multiple of S={s}, so floor drops "
                     f"the last {left} padded row(s)/column(s) that no window reaches")
        elif left:
            note += "; ceil_mode keeps a last, partial window"
        explanation.steps.append(Step(f"Output {axis} (输出{'高' if a == 0 else '宽'}度)",
                                      formula, numbers, output[a], note.lstrip("; ")))


def explain_conv2d(input_size, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                   groups=1, bias=True):
    """Output size, parameters, MACs/FLOPs and receptive field of one Conv2d."""
    c, h, w = _input(input_size)
    out_channels = _positive(out_channels, "out_channels")
    kernel, stride = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding", 0), _pair(dilation, "dilation")
    groups = _positive(groups, "groups")
    if c % groups or out_channels % groups:
        raise ValueError(f"groups must divide in_channels and out_channels; got "
                         f"in_channels={c}, out_channels={out_channels}, groups={groups}")
    for a, (axis, _, _) in enumerate(AXES):
        _check_fits((h, w)[a], kernel[a], padding[a], dilation[a], axis)
    oh = conv_output_size(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kernel[1], stride[1], padding[1], dilation[1])
    kh, kw = kernel
    e = Explanation(
        f"conv2d on input {c}x{h}x{w}: {out_channels} filters of {kh}x{kw}, stride "
        f"{_ax(stride)}, padding {_ax(padding)}, dilation {_ax(dilation)}, groups {groups}"
        f"{'' if bias else ', no bias'}")
    _size_steps(e, (h, w), kernel, stride, padding, dilation, (oh, ow), "conv")
    e.steps.append(Step("Output shape (输出形状)", "(C_out, OH, OW)", "",
                        [out_channels, oh, ow]))
    cg = c // groups
    weights = out_channels * cg * kh * kw
    params = conv2d_params(c, out_channels, kernel, groups, bias)
    e.steps.append(Step(
        "Parameters (参数量)",
        "C_out * (C_in/groups * KH * KW" + (" + 1)" if bias else ")"),
        f"{out_channels} * ({cg} * {kh} * {kw}" + (" + 1)" if bias else ")"), params,
        f"{weights:,} weights + {out_channels if bias else 0} biases; one filter has "
        f"{cg * kh * kw + (1 if bias else 0)} parameters"))
    macs = conv2d_macs(c, out_channels, kernel, (oh, ow), groups)
    e.steps.append(Step("MACs (乘加次数)", "C_in/groups * KH * KW * OH * OW * C_out",
                        f"{cg} * {kh} * {kw} * {oh} * {ow} * {out_channels}", macs,
                        "one multiply-add per weight per output position; bias adds not "
                        "counted"))
    e.steps.append(Step("FLOPs (浮点运算数)", "2 * MACs", f"2 * {macs:,}",
                        flops_from_macs(macs)))
    rf = [effective_kernel(kernel[a], dilation[a]) for a in (0, 1)]
    e.steps.append(Step("Receptive field of one output (感受野)", "D*(K-1) + 1 per axis",
                        f"{dilation[0]}*({kh}-1) + 1 by {dilation[1]}*({kw}-1) + 1",
                        f"{rf[0]}x{rf[1]}", "input pixels one output value sees"))
    dense = c * h * w + 1
    e.steps.append(Step("Compared with a fully connected unit (对比全连接)",
                        "C_in * H * W + 1 per unit", f"{c} * {h} * {w} + 1", dense,
                        f"a conv filter shares its {cg * kh * kw + int(bias)} parameters "
                        f"across all {oh * ow} positions"))
    if stride == (1, 1):
        same = [Fraction(effective_kernel(kernel[a], dilation[a]) - 1, 2) for a in (0, 1)]
        shown = _ax([_fraction(v) for v in same])
        e.steps.append(Step("Padding that keeps the size ('same', 保持尺寸)",
                            "P = (D*(K-1)) / 2 at stride 1", "", shown,
                            "an odd kernel needs padding (K-1)/2"
                            if all(v.denominator == 1 for v in same) else
                            "an even kernel needs uneven padding (one more on one side)"))
    e.result = {"op": "conv2d", "input_shape": [c, h, w],
                "output_shape": [out_channels, oh, ow], "params": params, "macs": macs,
                "flops": flops_from_macs(macs), "receptive_field": rf}
    return e


def explain_pool(input_size, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 kind="max"):
    """Output size of one MaxPool2d / AvgPool2d (stride defaults to the kernel)."""
    c, h, w = _input(input_size)
    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg'; got {kind!r}")
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding", 0), _pair(dilation, "dilation")
    if kind == "avg" and dilation != (1, 1):
        raise ValueError(f"dilation applies to max pooling only; got dilation={dilation} "
                         f"with kind='avg'")
    for a, (axis, _, _) in enumerate(AXES):
        if padding[a] > kernel[a] // 2:
            raise ValueError(f"padding must be at most half the kernel; got padding="
                             f"{padding[a]}, kernel_size={kernel[a]} ({axis})")
        _check_fits((h, w)[a], kernel[a], padding[a], dilation[a], axis, "window")
    oh = pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    e = Explanation(
        f"{kind}_pool2d on input {c}x{h}x{w}: window {kernel[0]}x{kernel[1]}, stride "
        f"{_ax(stride)}, padding {_ax(padding)}, dilation {_ax(dilation)}"
        f"{', ceil_mode' if ceil_mode else ''}")
    e.result["ceil_mode"] = ceil_mode
    _size_steps(e, (h, w), kernel, stride, padding, dilation, (oh, ow), "pool")
    e.steps.append(Step("Output shape (输出形状)", "(C, OH, OW): channels unchanged", "",
                        [c, oh, ow], "each channel is pooled on its own"))
    e.steps.append(Step("Parameters (参数量)", "none", "", 0, "pooling learns nothing"))
    per = kernel[0] * kernel[1]
    other = ("comparisons", per - 1) if kind == "max" else ("additions", per)
    e.steps.append(Step("MACs (乘加次数)", "0 by convention", "", 0,
                        f"it still does {other[1]} {other[0]} per output value: "
                        f"{other[1] * c * oh * ow:,} in all"))
    rf = [effective_kernel(kernel[a], dilation[a]) for a in (0, 1)]
    e.steps.append(Step("Receptive field of one output (感受野)", "D*(K-1) + 1 per axis", "",
                        f"{rf[0]}x{rf[1]}"))
    e.result = {"op": f"{kind}_pool2d", "input_shape": [c, h, w], "output_shape": [c, oh, ow],
                "params": 0, "macs": 0, "flops": 0, "receptive_field": rf,
                "ceil_mode": ceil_mode}
    return e


def explain_conv_transpose2d(input_size, out_channels, kernel_size, stride=1, padding=0,
                             output_padding=0, dilation=1, groups=1, bias=True):
    """Output size, parameters and MACs of one ConvTranspose2d (the upsampling conv)."""
    c, h, w = _input(input_size)
    out_channels = _positive(out_channels, "out_channels")
    kernel, stride = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding", 0), _pair(dilation, "dilation")
    output_padding = _pair(output_padding, "output_padding", 0)
    groups = _positive(groups, "groups")
    if c % groups or out_channels % groups:
        raise ValueError(f"groups must divide in_channels and out_channels; got "
                         f"in_channels={c}, out_channels={out_channels}, groups={groups}")
    for a, (axis, _, _) in enumerate(AXES):
        if output_padding[a] >= max(stride[a], dilation[a]):
            raise ValueError(f"output_padding must be smaller than stride or dilation; got "
                             f"output_padding={output_padding[a]}, stride={stride[a]}, "
                             f"dilation={dilation[a]} ({axis})")
    sizes = [conv_transpose_output_size((h, w)[a], kernel[a], stride[a], padding[a],
                                        output_padding[a], dilation[a]) for a in (0, 1)]
    for a, (axis, _, _) in enumerate(AXES):
        if sizes[a] < 1:
            raise ValueError(f"padding {padding[a]} crops the whole output {axis} "
                             f"(it would be {sizes[a]}); use less padding")
    kh, kw = kernel
    e = Explanation(
        f"conv_transpose2d on input {c}x{h}x{w}: {out_channels} filters of {kh}x{kw}, stride "
        f"{_ax(stride)}, padding {_ax(padding)}, output_padding {_ax(output_padding)}, "
        f"dilation {_ax(dilation)}, groups {groups}")
    for a, (axis, hh, oh) in enumerate(AXES):
        k, s, p, d, op = kernel[a], stride[a], padding[a], dilation[a], output_padding[a]
        e.steps.append(Step(
            f"Output {axis} (输出{'高' if a == 0 else '宽'}度)",
            f"{oh} = ({hh} - 1) * S - 2P + D*(K-1) + output_padding + 1",
            f"({(h, w)[a]} - 1) * {s} - 2*{p} + {d}*({k}-1) + {op} + 1", sizes[a],
            "the inverse of the conv size formula: a conv with these settings maps "
            f"{sizes[a]} back to {(h, w)[a]}"))
    e.steps.append(Step("Output shape (输出形状)", "(C_out, OH, OW)", "",
                        [out_channels, *sizes]))
    params = conv_transpose2d_params(c, out_channels, kernel, groups, bias)
    og = out_channels // groups
    e.steps.append(Step("Parameters (参数量)",
                        "C_in * (C_out/groups * KH * KW)" + (" + C_out" if bias else ""),
                        f"{c} * ({og} * {kh} * {kw})" + (f" + {out_channels}" if bias else ""),
                        params, "weight shape is (C_in, C_out/groups, KH, KW)"))
    macs = conv_transpose2d_macs(c, out_channels, kernel, (h, w), groups)
    e.steps.append(Step("MACs (乘加次数)", "C_in * H * W * C_out/groups * KH * KW",
                        f"{c} * {h} * {w} * {og} * {kh} * {kw}", macs,
                        "every input value is multiplied into a KH x KW patch of every "
                        "output channel of its group"))
    e.steps.append(Step("FLOPs (浮点运算数)", "2 * MACs", f"2 * {macs:,}",
                        flops_from_macs(macs)))
    e.result = {"op": "conv_transpose2d", "input_shape": [c, h, w],
                "output_shape": [out_channels, *sizes], "params": params, "macs": macs,
                "flops": flops_from_macs(macs)}
    return e


def _fraction(x):
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _ax(pair):
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


EXPLAINERS = {
    "conv2d": explain_conv2d,
    "pool": explain_pool,
    "conv-transpose": explain_conv_transpose2d,
}


def explain(op, **kwargs):
    """explain('conv2d' | 'pool' | 'conv-transpose', **arguments of that explainer)."""
    if op not in EXPLAINERS:
        raise ValueError(f"op must be one of {sorted(EXPLAINERS)}; got {op!r}")
    return EXPLAINERS[op](**kwargs)
