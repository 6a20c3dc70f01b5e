"""deform_conv2d / DeformConv2d: torchvision semantics, checked against onnx.reference's
DeformConv (ONNX opset 19 specifies torchvision's operator; the ONNX project implements it over
its GridSample) and two references written here: a scalar NumPy loop that transcribes
torchvision's bilinear sampling, and a vectorised torch version whose autograd gives every
gradient. torchvision's own deform_conv2d cannot run here: it has no Python path, only the
C++ kernel `torch.ops.torchvision.deform_conv2d`, and torchvision's C++ library does not load
beside the CPU build of torch (see tests/torchvision_models.py)."""

import numpy as np
import pytest
import torch
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F


def numpy_reference(x, offset, weight, bias, stride, padding, dilation, mask):
    """Forward only, one output at a time, as torchvision's CPU kernel computes it."""
    n, c, h, w = x.shape
    oc, cg, kh, kw = weight.shape
    og = offset.shape[1] // (2 * kh * kw)
    oh, ow = offset.shape[2:]
    groups = c // cg

    def bilinear(plane, y, xx):
        if y <= -1 or y >= h or xx <= -1 or xx >= w:
            return 0.0
        y0, x0 = int(np.floor(y)), int(np.floor(xx))
        ly, lx = y - y0, xx - x0
        total = 0.0
        for r, cc, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                          (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
            if 0 <= r < h and 0 <= cc < w:
                total += wt * plane[r, cc]
        return total

    out = np.zeros((n, oc, oh, ow))
    for b in range(n):
        for o in range(oc):
            g = o // (oc // groups)
            for p in range(oh):
                for q in range(ow):
                    acc = 0.0 if bias is None else bias[o]
                    for ci in range(cg):
                        ch = g * cg + ci
                        grp = ch // (c // og)
                        for i in range(kh):
                            for j in range(kw):
                                k = i * kw + j
                                dy = offset[b, grp * 2 * kh * kw + 2 * k, p, q]
                                dx = offset[b, grp * 2 * kh * kw + 2 * k + 1, p, q]
                                y = p * stride[0] - padding[0] + i * dilation[0] + dy
                                xx = q * stride[1] - padding[1] + j * dilation[1] + dx
                                m = 1.0 if mask is None else mask[b, grp * kh * kw + k, p, q]
                                acc += weight[o, ci, i, j] * m * bilinear(x[b, ch], y, xx)
                    out[b, o, p, q] = acc
    return out


def torch_reference(x, offset, weight, bias, stride, padding, dilation, mask):
    """Vectorised in torch (channels-first gather); autograd supplies the gradients."""
    n, c, h, w = x.shape
    oc, cg, kh, kw = weight.shape
    taps = kh * kw
    og = offset.shape[1] // (2 * taps)
    oh, ow = offset.shape[2:]
    off = offset.reshape(n, og, taps, 2, oh, ow)
    planes = x.reshape(n, og, c // og, h * w)
    rows = (torch.arange(oh) * stride[0] - padding[0]).view(1, 1, oh, 1)
    cols = (torch.arange(ow) * stride[1] - padding[1]).view(1, 1, 1, ow)
    samples = []
    for k in range(taps):
        i, j = divmod(k, kw)
        y = rows + i * dilation[0] + off[:, :, k, 0]  # (N, OG, OH, OW)
        xx = cols + j * dilation[1] + off[:, :, k, 1]
        y0, x0 = torch.floor(y), torch.floor(xx)
        ly, lx = y - y0, xx - x0
        value = 0
        for dy, dx, wt in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx),
                           (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
            r, cc = y0.long() + dy, x0.long() + dx
            inside = (r >= 0) & (r < h) & (cc >= 0) & (cc < w)
            flat = (r.clamp(0, h - 1) * w + cc.clamp(0, w - 1)).reshape(n, og, 1, oh * ow)
            picked = torch.gather(planes, 3, flat.expand(n, og, c // og, oh * ow))
            value = value + picked * (wt * inside).reshape(n, og, 1, oh * ow)
        if mask is not None:
            value = value * mask.reshape(n, og, taps, oh * ow)[:, :, k].unsqueeze(2)
        samples.append(value.reshape(n, c, oh * ow))
    columns = torch.stack(samples, 2)  # (N, C, KH*KW, L)
    groups = c // cg
    columns = columns.reshape(n, groups, cg * taps, oh * ow)
    y = torch.einsum("gok,ngkl->ngol", weight.reshape(groups, oc // groups, cg * taps), columns)
    y = y.reshape(n, oc, oh, ow)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def _case(rng, n, c, oc, groups, og, kernel, stride, padding, dilation, size, use_mask,
          spread=1.5, dtype=np.float32):
    h, w = size
    kh, kw = kernel
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    offset = (rng.uniform(-spread, spread, (n, 2 * og * kh * kw, oh, ow))).astype(dtype)
    weight = rng.standard_normal((oc, c // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(oc).astype(dtype)
    mask = rng.uniform(0, 1, (n, og * kh * kw, oh, ow)).astype(dtype) if use_mask else None
    return x, offset, weight, bias, mask


GRID = [
    # n, c, oc, groups, offset groups, kernel, stride, padding, dilation, size, mask
    (1, 1, 1, 1, 1, (2, 2), (1, 1), (0, 0), (1, 1), (3, 3), False),
    (2, 4, 6, 1, 2, (3, 3), (1, 1), (1, 1), (1, 1), (5, 6), True),
    (2, 4, 4, 2, 1, (3, 2), (2, 1), (1, 0), (1, 2), (7, 6), False),
    (1, 6, 3, 3, 3, (2, 3), (1, 2), (0, 2), (2, 1), (6, 7), True),
    (2, 3, 5, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1), (4, 5), True),
    (1, 4, 8, 4, 4, (3, 3), (3, 3), (2, 2), (1, 1), (5, 5), False),
]


@pytest.mark.parametrize("case", GRID)
def test_deform_conv2d_matches_onnx_reference(case):
    """Forward in float64 against onnx.reference, written outside this project."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    n, c, oc, groups, og, kernel, stride, padding, dilation, size, use_mask = case
    x, offset, weight, bias, mask = _case(np.random.default_rng(6), n, c, oc, groups, og,
                                          kernel, stride, padding, dilation, size, use_mask,
                                          spread=3.0, dtype=np.float64)
    # onnx.reference rounds each sampling coordinate to float32; offsets on a 2^-16 grid keep
    # every coordinate (|value| < 32) exact in float32, so the comparison can be float64-tight
    offset = np.round(offset * 2**16) / 2**16
    feeds = {"X": x, "W": weight, "offset": offset, "B": bias}
    if use_mask:
        feeds["mask"] = mask
    node = helper.make_node("DeformConv", list(feeds), ["Y"], dilations=list(dilation),
                            group=groups, kernel_shape=list(kernel), offset_group=og,
                            pads=[*padding, *padding], strides=list(stride))
    (expected,) = ReferenceEvaluator(node).run(None, feeds)
    got = F.deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.data, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", GRID)
def test_torch_reference_matches_the_numpy_transcription(case):
    rng = np.random.default_rng(1)
    n, c, oc, groups, og, kernel, stride, padding, dilation, size, use_mask = case
    x, offset, weight, bias, mask = _case(rng, n, c, oc, groups, og, kernel, stride, padding,
                                          dilation, size, use_mask, spread=3.0,
                                          dtype=np.float64)
    expected = numpy_reference(x, offset, weight, bias, stride, padding, dilation, mask)
    got = torch_reference(*(None if a is None else torch.tensor(a)
                            for a in (x, offset, weight, bias)), stride, padding, dilation,
                          None if mask is None else torch.tensor(mask))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", GRID)
def test_deform_conv2d_matches_reference_forward_and_backward(case):
    rng = np.random.default_rng(2)
    n, c, oc, groups, og, kernel, stride, padding, dilation, size, use_mask = case
    arrays = _case(rng, n, c, oc, groups, og, kernel, stride, padding, dilation, size, use_mask,
                   spread=2.5)
    names = ["input", "offset", "weight", "bias", "mask"]
    ours = {k: None if a is None else juanji.tensor(a, requires_grad=True)
            for k, a in zip(names, arrays)}
    ref = {k: None if a is None else to_torch(a, requires_grad=True)
           for k, a in zip(names, arrays)}
    y = F.deform_conv2d(ours["input"], ours["offset"], ours["weight"], ours["bias"], stride,
                        padding, dilation, ours["mask"])
    y_ref = torch_reference(ref["input"], ref["offset"], ref["weight"], ref["bias"], stride,
                            padding, dilation, ref["mask"])
    assert_close(y, y_ref, rtol=1e-5, atol=1e-5, msg="forward")
    upstream = rng.standard_normal(y.shape).astype(np.float32)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    for name in names:
        if ours[name] is not None:
            assert_close(ours[name].grad, ref[name].grad, rtol=1e-4, atol=1e-4,
                         msg=f"grad {name}")


def test_zero_offsets_and_unit_mask_reduce_to_conv2d():
    rng = np.random.default_rng(3)
    x = juanji.tensor(rng.standard_normal((2, 4, 6, 5)).astype(np.float32))
    w = juanji.tensor(rng.standard_normal((6, 2, 3, 3)).astype(np.float32))
    b = juanji.tensor(rng.standard_normal(6).astype(np.float32))
    offset = np.zeros((2, 2 * 9, 3, 3), np.float32)
    mask = np.ones((2, 9, 3, 3), np.float32)
    got = F.deform_conv2d(x, offset, w, b, stride=2, padding=1, dilation=1, mask=mask)
    expected = F.conv2d(x, w, b, stride=2, padding=1, groups=2)
    np.testing.assert_allclose(got.data, expected.data, rtol=1e-5, atol=1e-6)


def test_integer_offset_shifts_the_sample_and_outside_reads_zero():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 1, 1), np.float32)
    offset = np.zeros((1, 2, 4, 4), np.float32)
    offset[0, 1] = 1.0  # every sample one column to the right
    got = F.deform_conv2d(x, offset, w).data[0, 0]
    expected = np.concatenate([x[0, 0, :, 1:], np.zeros((4, 1), np.float32)], axis=1)
    np.testing.assert_array_equal(got, expected)
    offset[0, 1] = 0.5  # halfway: mean of the two neighbours, half the edge cell at the border
    got = F.deform_conv2d(x, offset, w).data[0, 0]
    expected = (x[0, 0] + np.concatenate([x[0, 0, :, 1:], np.zeros((4, 1))], axis=1)) / 2
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("use_mask", [False, True])
def test_deform_conv2d_gradcheck(use_mask):
    rng = np.random.default_rng(4)
    x, offset, weight, bias, mask = _case(rng, 1, 2, 2, 2, 2, (2, 3), (2, 2), (1, 1), (1, 1),
                                          (3, 4), use_mask, dtype=np.float64)
    if use_mask:
        gradcheck(lambda x, o, w, b, m: F.deform_conv2d(x, o, w, b, 2, 1, 1, m),
                  [x, offset, weight, bias, mask])
    else:
        gradcheck(lambda x, o, w, b: F.deform_conv2d(x, o, w, b, 2, 1, 1),
                  [x, offset, weight, bias])


def test_deform_conv2d_layer():
    layer = nn.DeformConv2d(4, 6, 3, padding=1, groups=2)
    assert layer.weight.shape == (6, 2, 3, 3) and layer.bias.shape == (6,)
    x = np.random.default_rng(5).standard_normal((1, 4, 5, 5)).astype(np.float32)
    offset = np.zeros((1, 18, 5, 5), np.float32)
    y = layer(juanji.tensor(x), juanji.tensor(offset))
    expected = F.conv2d(x, layer.weight, layer.bias, padding=1, groups=2)
    np.testing.assert_allclose(y.data, expected.data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("offset_shape, mask_shape, match", [
    ((1, 17, 3, 3), None, "offset.shape\\[1\\]"),
    ((1, 18, 4, 3), None, "offset must have shape"),
    ((1, 54, 3, 3), None, "offset groups"),
    ((1, 18, 3, 3), (1, 8, 3, 3), "mask must have shape"),
])
def test_deform_conv2d_shape_errors(offset_shape, mask_shape, match):
    x = np.zeros((1, 4, 5, 5), np.float32)
    w = np.zeros((2, 4, 3, 3), np.float32)
    mask = None if mask_shape is None else np.zeros(mask_shape, np.float32)
    with pytest.raises(ValueError, match=match):
        F.deform_conv2d(x, np.zeros(offset_shape, np.float32), w, mask=mask)
