"""Seeds, case 1 (边缘检测二值图): a 1x3 kernel [1, 0, -1] finds the black/white boundary.

The image is 50x50: white (1) in columns 0..29, black (0) from column 30. The conv output is
x[:, j] - x[:, j + 2], which is non-zero only where the window straddles the boundary:
columns 28 and 29 of the 50x48 output.

    python examples/seeds/edge_detect_binary.py [--out DIR]
"""

import argparse
from pathlib import Path

import numpy as np

import juanji
from juanji import nn
from juanji.viz.images import caption, hstack, upscale, write_image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="seed_outputs", help="folder for the picture")
    args = parser.parse_args(argv)

    # the seeds' Conv2D(num_channels=1, num_filters=1, filter_size=[1, 3]) with w = [1, 0, -1]
    conv = nn.Conv2d(1, 1, kernel_size=(1, 3), bias=False)
    conv.weight.data[...] = np.array([1, 0, -1], dtype=np.float32).reshape(1, 1, 1, 3)

    img = np.ones((50, 50), dtype=np.float32)
    img[:, 30:] = 0.0
    x = juanji.tensor(img.reshape(1, 1, 50, 50))  # [N, C, H, W]
    with juanji.no_grad():
        out = conv(x).numpy()[0, 0]  # (50, 48)

    columns = np.nonzero(np.abs(out).sum(axis=0))[0].tolist()
    print(f"input {img.shape}, output {out.shape}; conv parameters: "
          f"{[tuple(p.shape) for p in conv.parameters()]}")
    print(f"non-zero output columns: {columns} (value {out[0, columns[0]]:g})")
    assert columns == [28, 29], columns

    path = Path(args.out) / "edge_binary.png"
    picture = hstack([caption(upscale((img * 255).astype(np.uint8), 4), "input"),
                      caption(upscale((np.abs(out) * 255).astype(np.uint8), 4), "|output|")])
    write_image(path, picture)
    print(f"wrote {path}")
    return columns


if __name__ == "__main__":
    main()
