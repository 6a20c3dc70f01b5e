"""Up-sampling layers: Upsample (nearest / bilinear interpolation) and the pixel shuffles."""

from juanji.nn import functional as F
from juanji.nn.args import single
from juanji.nn.module import Module

__all__ = ["PixelShuffle", "PixelUnshuffle", "Upsample", "UpsamplingBilinear2d",
           "UpsamplingNearest2d"]


class Upsample(Module):
    """F.interpolate as a layer: (N, C, H, W) -> (N, C, OH, OW) by `size` or `scale_factor`.

    mode 'nearest' | 'nearest-exact' | 'bilinear' | 'bicubic' (4-D) | 'linear' (3-D); see
    F.interpolate for the source-index rules (they are PyTorch's).
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample needs exactly one of size or scale_factor; got "
                             f"size={size!r}, scale_factor={scale_factor!r}")
        if align_corners is not None and mode.startswith("nearest"):
            raise ValueError("align_corners option can only be set with the interpolating "
                             f"modes linear | bilinear | bicubic; got mode={mode!r}")
        self.size = tuple(size) if isinstance(size, list) else size
        self.scale_factor = tuple(float(s) for s in scale_factor) \
            if isinstance(scale_factor, (tuple, list)) else \
            None if scale_factor is None else float(scale_factor)
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Upsample(size, scale_factor, mode='nearest')."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample(size, scale_factor, mode='bilinear', align_corners=True) (PyTorch's legacy
    layer keeps the corners aligned)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """(N, C * r * r, H, W) -> (N, C, H * r, W * r) (sub-pixel convolution's rearrangement)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = single(upscale_factor, "upscale_factor")

    def forward(self, x):
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(N, C, H * r, W * r) -> (N, C * r * r, H, W), the inverse of PixelShuffle."""

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = single(downscale_factor, "downscale_factor")

    def forward(self, x):
        return F.pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"
