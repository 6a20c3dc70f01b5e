"""Seeds, 从CNN到FCN / U-Net: a tiny fully convolutional network segments synthetic shapes.

No fully connected layer: an encoder (conv, conv, pool, conv) extracts features at half
resolution, a transposed conv (上卷积, 'deconvolution') brings them back to full resolution,
the high-resolution skip connection is concatenated (U-Net style, 特征融合) and a 1x1 conv
classifies every pixel as background or shape. The data is drawn on the fly: bright disks
and squares on a noisy, shaded background.

    python examples/seeds/tiny_segmentation.py [--steps 150] [--size 32] [--out DIR]
"""

import argparse
from pathlib import Path

import numpy as np

import juanji
from juanji import nn, optim
from juanji.analysis import summary
from juanji.nn import functional as F
from juanji.viz.images import caption, hstack, upscale, vstack, write_image


def shapes(n, size, rng):
    """n images (n, 1, size, size) float32 and masks (n, size, size) int64."""
    y, x = np.mgrid[0:size, 0:size]
    images = np.empty((n, 1, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int64)
    for i in range(n):
        shade = rng.uniform(0.0, 0.35) * (x if rng.random() < 0.5 else y) / size
        background = 0.15 + shade + rng.normal(0, 0.08, (size, size))
        cy, cx = rng.integers(size // 5, size - size // 5, 2)
        r = rng.integers(size // 10, size // 4)
        mask = ((y - cy) ** 2 + (x - cx) ** 2 <= r * r) if rng.random() < 0.5 else \
            ((np.abs(y - cy) <= r) & (np.abs(x - cx) <= r))
        images[i, 0] = np.where(mask, 0.75 + rng.normal(0, 0.08, (size, size)), background)
        masks[i] = mask
    return images, masks


class TinyUNet(nn.Module):
    """(N, 1, H, W) -> (N, 2, H, W) with H, W even: per-pixel scores (background, shape)."""

    def __init__(self, width=8):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.enc2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(2 * width, width, kernel_size=2, stride=2)
        self.dec = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, 2, kernel_size=1)

    def forward(self, x):
        skip = self.enc1(x)                       # (N, w, H, W)
        deep = self.enc2(self.pool(skip))         # (N, 2w, H/2, W/2)
        up = self.up(deep)                        # (N, w, H, W)
        return self.head(self.dec(juanji.cat([skip, up], 1)))  # (N, 2, H, W)


def iou(pred, mask):
    inter = np.logical_and(pred == 1, mask == 1).sum()
    union = np.logical_or(pred == 1, mask == 1).sum()
    return inter / union if union else 1.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="image side (even)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="seed_outputs")
    args = parser.parse_args(argv)

    juanji.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = TinyUNet()
    print(summary(model, (1, args.size, args.size), name="TinyUNet").table())
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    test_x, test_y = shapes(32, args.size, np.random.default_rng(args.seed + 1))

    def scores():
        model.eval()
        with juanji.no_grad():
            pred = model(juanji.tensor(test_x)).numpy().argmax(axis=1)
        model.train()
        return float((pred == test_y).mean()), float(iou(pred, test_y)), pred

    acc0, iou0, _ = scores()
    losses = []
    for step in range(1, args.steps + 1):
        images, masks = shapes(args.batch_size, args.size, rng)
        loss = F.cross_entropy(model(juanji.tensor(images)), juanji.tensor(masks))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 25 == 0 or step == args.steps:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    acc1, iou1, pred = scores()
    print(f"pixel accuracy {acc0:.3f} -> {acc1:.3f}; IoU of the shapes {iou0:.3f} -> {iou1:.3f}")

    rows = [hstack([upscale((np.clip(test_x[i, 0], 0, 1) * 255).astype(np.uint8), 4),
                    upscale((test_y[i] * 255).astype(np.uint8), 4),
                    upscale((pred[i] * 255).astype(np.uint8), 4)], gap=4) for i in range(4)]
    path = Path(args.out) / "tiny_segmentation.png"
    write_image(path, caption(vstack(rows, gap=4), "input | truth | prediction"))
    print(f"wrote {path}")
    return {"accuracy": acc1, "iou": iou1, "losses": losses}


if __name__ == "__main__":
    main()
