"""2-D convolution (cross-correlation, as in every framework) as im2col + one GEMM per group."""

from juanji.arithmetic import conv_output_size
from juanji.function import Function
from juanji.ops.kernels import col2im_nhwc, pad_nhwc, window_view


class Conv2d(Function):
    """y[n, oc] = sum over (c, kh, kw) of W[oc, c, kh, kw] * x_pad[n, g*Cg + c, ...] + b[oc].

    x: (N, C, H, W), weight: (OC, C/G, KH, KW), bias: (OC,) or None -> y: (N, OC, OH, OW).
    `padding` is ((top, bottom), (left, right)). The GEMM runs channels-last: the returned
    array is an NCHW view of NHWC memory, which the next windowed op reads without a copy.
    """

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=((0, 0), (0, 0)),
                dilation=(1, 1), groups=1):
        n, c, h, w = x.shape
        oc, cg, kh, kw = weight.shape
        g, ocg = groups, oc // groups
        oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
        ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
        xpad = pad_nhwc(x, *padding)  # (N, HP, WP, C)
        windows = window_view(xpad, (kh, kw), stride, dilation, (oh, ow))  # (N,OH,OW,KH,KW,C)
        windows = windows.reshape(n, oh, ow, kh, kw, g, cg).transpose(5, 0, 1, 2, 3, 4, 6)
        cols = windows.reshape(g, n * oh * ow, kh * kw * cg)  # (G, L, Kg), the one copy
        wg = weight.reshape(g, ocg, cg, kh, kw).transpose(0, 1, 3, 4, 2)
        wg = wg.reshape(g, ocg, kh * kw * cg)  # (G, OCg, Kg)
        y = cols @ wg.transpose(0, 2, 1)  # (G, L, OCg)
        y = y[0] if g == 1 else y.transpose(1, 0, 2).reshape(n * oh * ow, oc)  # (L, OC)
        if bias is not None:
            y += bias
        self.saved = (cols if self.needs_grad[1] else None, wg, xpad.shape, x.shape)
        self.params = (kh, kw, g, stride, padding, dilation)
        return y.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)  # NCHW view of NHWC

    def backward(self, gy):
        cols, wg, padded_shape, x_shape = self.saved
        kh, kw, g, stride, padding, dilation = self.params
        n, oc, oh, ow = gy.shape
        cg = x_shape[1] // g
        gyg = gy.transpose(0, 2, 3, 1).reshape(n * oh * ow, g, oc // g).transpose(1, 0, 2)
        gx = gw = gb = None
        if self.needs_grad[0]:
            dcols = gyg @ wg  # (G, L, Kg)
            dcols = dcols.reshape(g, n, oh, ow, kh, kw, cg).transpose(1, 2, 3, 4, 5, 0, 6)
            dcols = dcols.reshape(n, oh, ow, kh, kw, g * cg)  # (N, OH, OW, KH, KW, C)
            dxpad = col2im_nhwc(dcols, padded_shape, (kh, kw), stride, dilation)
            (top, _), (left, _) = padding
            h, w = x_shape[2:]
            gx = dxpad[:, top : top + h, left : left + w, :].transpose(0, 3, 1, 2)
        if self.needs_grad[1]:
            gw = gyg.transpose(0, 2, 1) @ cols  # (G, OCg, Kg)
            gw = gw.reshape(g, oc // g, kh, kw, cg).transpose(0, 1, 4, 2, 3)
            gw = gw.reshape(oc, cg, kh, kw)
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gw, gb
