"""U-Net (Ronneberger, Fischer & Brox, 2015, 'U-Net: Convolutional Networks for Biomedical
Image Segmentation').

Contracting path: `depth` times [2x2 max-pool, two 3x3 convs], doubling the channels from
`width`; expanding path: `depth` times [2x2 up-convolution (ConvTranspose2d, stride 2) halving
the channels, concatenation with the skip of the same resolution, two 3x3 convs]; a final 1x1
conv gives num_classes scores per pixel. The paper's network is width=64, depth=4.

Differences from the paper, both switchable: the 3x3 convs are padded (`padding=1`) so the
output has the input's resolution and no cropping is needed, and `batch_norm=True` (default)
puts a BatchNorm2d after each conv (then the conv has no bias). Input (N, in_channels, H, W)
with H, W divisible by 2**depth -> (N, num_classes, H, W). Default 1x256x256 (the paper's
single-channel microscopy images; any multiple of 16 works at depth 4).

state_dict keys: inc.{0,1,3,4}, downs.{i}.1.{0,1,3,4} (index 0 is the pool), ups.{i}.up,
ups.{i}.conv.{0,1,3,4}, outc. (Without BN: inc.{0,2}, ...)
"""

import juanji
from juanji import nn
from juanji.models.validation import check_model_args


class DoubleConv(nn.Sequential):
    """(3x3 conv [-> BN] -> ReLU) x 2: (N, in_channels, H, W) -> (N, out_channels, H, W)."""

    def __init__(self, in_channels, out_channels, batch_norm=True):
        layers = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, kernel_size=3, padding=1,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Up(nn.Module):
    """Up-convolution x2 halving the channels, concatenate the skip, DoubleConv.
    (N, in_channels, H, W), skip (N, in_channels / 2, 2H, 2W) -> (N, out_channels, 2H, 2W)."""

    def __init__(self, in_channels, out_channels, batch_norm=True):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels, batch_norm)

    def forward(self, x, skip):
        x = self.up(x)  # (N, in_channels / 2, 2H, 2W)
        return self.conv(juanji.cat([skip, x], 1))  # skip first, as in the paper's figure


class UNet(nn.Module):
    """(N, in_channels, H, W) -> (N, num_classes, H, W); H, W divisible by 2**depth."""

    def __init__(self, num_classes=2, in_channels=1, width=64, depth=4, batch_norm=True):
        super().__init__()
        self.depth = depth
        self.inc = DoubleConv(in_channels, width, batch_norm)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(width * 2**i, width * 2 ** (i + 1),
                                                      batch_norm))
            for i in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(width * 2 ** (i + 1), width * 2**i, batch_norm) for i in reversed(range(depth))
        )
        self.outc = nn.Conv2d(width, num_classes, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        h, w = x.shape[2:]
        multiple = 2**self.depth
        if h % multiple or w % multiple:
            raise ValueError(f"U-Net of depth {self.depth} needs input height and width "
                             f"divisible by {multiple}; got {h}x{w}")
        x = self.inc(x)  # (N, width, H, W)
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)  # channels x2, resolution /2
        for up in self.ups:
            x = up(x, skips.pop())  # channels /2, resolution x2
        return self.outc(x)  # (N, num_classes, H, W)


def unet(num_classes=2, in_channels=1, width=64, depth=4, batch_norm=True):
    """U-Net with `width` channels in the first level and `depth` poolings (paper: 64, 4);
    input (N, in_channels, H, W) with H, W divisible by 2**depth, output at input resolution."""
    check_model_args(num_classes, in_channels)
    for name, value in (("width", width), ("depth", depth)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    return UNet(num_classes, in_channels, width, depth, batch_norm)


FACTORIES = {"unet": unet}
DEFAULT_INPUT = {"unet": (1, 256, 256)}
