"""Deformable convolution (DCN v1, and v2 with a modulation mask), torchvision's semantics.

Each kernel tap samples the input at its regular grid point plus a learned fractional offset,
by bilinear interpolation with zeros outside the image; the samples (times the mask, if given)
form the im2col columns of an ordinary grouped conv GEMM.
"""

from juanji.arithmetic import conv_output_size
from juanji.backend import matmul, xp_of
from juanji.function import Function
from juanji.ops.conv import (
    add_bias,
    bias_grad,
    reduce_rows,
    rows_by_group,
    weight_from_rows,
    weight_rows,
)
from juanji.ops.kernels import group_columns, scatter_add_flat, ungroup_columns


def _corners(xp, y, x, h, w, dtype):
    """The 4 bilinear corners of sample points y, x (any shape): for each corner the flat
    index row * W + col (clipped into range), the weight (0 where the corner lies outside) and
    the weight's derivatives d/dy, d/dx (torchvision's, one-sided at integer points)."""
    y0, x0 = xp.floor(y), xp.floor(x)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    y0, x0 = y0.astype(xp.int64), x0.astype(xp.int64)
    corners = []
    for dy, dx, wt, wy, wx in ((0, 0, hy * hx, -hx, -hy), (0, 1, hy * lx, -lx, hy),
                               (1, 0, ly * hx, hx, -ly), (1, 1, ly * lx, lx, ly)):
        row, col = y0 + dy, x0 + dx
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        flat = xp.clip(row, 0, h - 1) * w + xp.clip(col, 0, w - 1)
        keep = inside.astype(dtype)
        corners.append((flat, wt * keep, wy * keep, wx * keep))
    return corners


class DeformConv2d(Function):
    """torchvision.ops.deform_conv2d. Inputs in order: x, offset, weight, bias, mask.

    x: (N, C, H, W); offset: (N, 2*OG*KH*KW, OH, OW) as (dy, dx) pairs per tap, tap-major
    (channel 2*(og*KH*KW + k) is dy of tap k in offset group og); weight: (OC, C/G, KH, KW);
    bias: (OC,) or None; mask: (N, OG*KH*KW, OH, OW) or None -> y: (N, OC, OH, OW).
    Input channel c uses offset group c // (C/OG). Tap (i, j) of output (oh, ow) samples
    (oh*SH - PH + i*DH + dy, ow*SW - PW + j*DW + dx).
    """

    input_kinds = "f"

    def forward(self, x, offset, weight, bias=None, mask=None, stride=(1, 1), padding=(0, 0),
                dilation=(1, 1)):
        xp = xp_of(x)
        n, c, h, w = x.shape
        oc, cg, kh, kw = weight.shape
        oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
        ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
        og = offset.shape[1] // (2 * kh * kw)
        planes = x.transpose(0, 2, 3, 1).reshape(n, h * w, og, c // og)  # (N, HW, OG, Cog)
        windows = xp.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
        for i, j, value in self._samples(planes, offset, mask, (h, w), (kh, kw), (oh, ow),
                                         stride, padding, dilation):
            windows[:, :, :, i, j, :] = value.reshape(n, oh, ow, c)
        groups = c // cg
        cols = group_columns(windows, groups)  # (G, L, Kg)
        wg = weight_rows(weight, groups)  # (G, OCg, Kg)
        y = matmul(cols, wg.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(n, oh, ow, oc)
        if bias is not None:
            add_bias(y, bias)
        self.saved = (planes, offset, mask, cols if self.needs_grad[2] else None, wg)
        self.geometry = (x.shape, weight.shape, (oh, ow), stride, padding, dilation)
        return y.transpose(0, 3, 1, 2)  # NCHW view of NHWC

    @staticmethod
    def _samples(planes, offset, mask, size, kernel, out, stride, padding, dilation,
                 with_parts=False):
        """Yield (i, j, masked samples (N, OH, OW, OG, Cog)) per tap; with_parts adds the
        corners, the gathered corner values, the mask of the tap and the sample before it."""
        xp = xp_of(planes)
        n, _, og, _ = planes.shape
        (h, w), (kh, kw), (oh, ow) = size, kernel, out
        off = offset.reshape(n, og, kh * kw, 2, oh, ow)
        gmask = None if mask is None else mask.reshape(n, og, kh * kw, oh, ow)
        base_y = (xp.arange(oh) * stride[0] - padding[0])[:, None, None]  # (OH, 1, 1)
        base_x = (xp.arange(ow) * stride[1] - padding[1])[:, None]  # (OW, 1)
        batch = xp.arange(n)[:, None, None, None]  # (N, 1, 1, 1)
        group = xp.arange(og)  # (OG,)
        for k in range(kh * kw):
            i, j = divmod(k, kw)
            dy = off[:, :, k, 0].transpose(0, 2, 3, 1)  # (N, OH, OW, OG)
            dx = off[:, :, k, 1].transpose(0, 2, 3, 1)
            y = (base_y + i * dilation[0] + dy).astype(planes.dtype, copy=False)
            x = (base_x + j * dilation[1] + dx).astype(planes.dtype, copy=False)
            corners = _corners(xp, y, x, h, w, planes.dtype)
            values = [planes[batch, flat, group] for flat, _, _, _ in corners]  # (N,OH,OW,OG,Cog)
            sample = sum(v * wt[..., None] for v, (_, wt, _, _) in zip(values, corners))
            tap_mask = None if gmask is None else gmask[:, :, k].transpose(0, 2, 3, 1)
            masked = sample if tap_mask is None else sample * tap_mask[..., None]
            if with_parts:
                yield i, j, masked, (corners, values, tap_mask, sample)
            else:
                yield i, j, masked

    def backward(self, gy):
        xp = xp_of(gy)
        planes, offset, mask, cols, wg = self.saved
        x_shape, w_shape, (oh, ow), stride, padding, dilation = self.geometry
        n, c, h, w = x_shape
        oc, cg, kh, kw = w_shape
        groups = c // cg
        og, cog = planes.shape[2], planes.shape[3]
        need_x, need_off, need_w = self.needs_grad[0], self.needs_grad[1], self.needs_grad[2]
        need_b = len(self.needs_grad) > 3 and self.needs_grad[3]
        need_m = len(self.needs_grad) > 4 and self.needs_grad[4]
        gyg = rows_by_group(gy.transpose(0, 2, 3, 1), groups)  # (G, L, OCg)
        gw = weight_from_rows(reduce_rows(gyg, cols), w_shape) if need_w else None
        gb = bias_grad(gy) if need_b else None
        if not (need_x or need_off or need_m):
            return None, None, gw, gb, None
        dwindows = ungroup_columns(matmul(gyg, wg), (n, oh, ow, kh, kw, c))  # (N,OH,OW,KH,KW,C)
        gx = xp.zeros(n * h * w * c, dtype=gy.dtype) if need_x else None
        goff = xp.zeros((n, og, kh * kw, 2, oh, ow), dtype=gy.dtype) if need_off else None
        gmask = xp.zeros((n, og, kh * kw, oh, ow), dtype=gy.dtype) if need_m else None
        # flat position of (n, hw, og, cog) in the channels-last input, minus the hw part
        base = ((xp.arange(n)[:, None, None, None, None] * h * w) * og
                + xp.arange(og)[:, None]) * cog + xp.arange(cog)  # (N, 1, 1, OG, Cog)
        for i, j, _, parts in self._samples(planes, offset, mask, (h, w), (kh, kw), (oh, ow),
                                            stride, padding, dilation, with_parts=True):
            corners, values, tap_mask, sample = parts
            k = i * kw + j
            dval = dwindows[:, :, :, i, j, :].reshape(n, oh, ow, og, cog)
            if need_m:
                gmask[:, :, k] = (dval * sample).sum(axis=-1).transpose(0, 3, 1, 2)
            if tap_mask is not None:
                dval = dval * tap_mask[..., None]
            if need_x:
                index = xp.concatenate([(flat[..., None] * og * cog + base).ravel()
                                        for flat, _, _, _ in corners])
                contrib = xp.concatenate([(dval * wt[..., None]).ravel()
                                          for _, wt, _, _ in corners])
                gx += scatter_add_flat(index, contrib, gx.size)
            if need_off:
                d_dy = sum(v * wy[..., None] for v, (_, _, wy, _) in zip(values, corners))
                d_dx = sum(v * wx[..., None] for v, (_, _, _, wx) in zip(values, corners))
                goff[:, :, k, 0] = (dval * d_dy).sum(axis=-1).transpose(0, 3, 1, 2)
                goff[:, :, k, 1] = (dval * d_dx).sum(axis=-1).transpose(0, 3, 1, 2)
        if need_x:
            gx = gx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        if need_off:
            goff = goff.reshape(offset.shape)
        if need_m:
            gmask = gmask.reshape(mask.shape)
        return gx, goff, gw, gb, gmask
