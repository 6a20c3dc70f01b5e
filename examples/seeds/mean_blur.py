"""Seeds, case 3 (均值模糊): a 5x5 mean kernel blurs a picture.

Every output is the average of a 5x5 window (weights 1/25). On the gray picture the output
has one channel; with `groups=3` (one kernel per channel, not summed) the colours stay.

    python examples/seeds/mean_blur.py [--image PATH] [--size 96x128] [--out DIR]
"""

import argparse
from pathlib import Path

import numpy as np

import juanji
from juanji import nn
from juanji.viz.images import caption, hstack, read_image, synthetic_photo, to_gray, write_image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None)
    parser.add_argument("--size", default="96x128")
    parser.add_argument("--out", default="seed_outputs")
    args = parser.parse_args(argv)

    if args.image:
        photo = read_image(args.image, "RGB")
    else:
        h, w = (int(v) for v in args.size.split("x"))
        photo = synthetic_photo(h, w)
    gray = to_gray(photo)

    blur = nn.Conv2d(1, 1, kernel_size=5, bias=False)
    blur.weight.data[...] = 1 / 25
    colour_blur = nn.Conv2d(3, 3, kernel_size=5, groups=3, bias=False)  # depthwise
    colour_blur.weight.data[...] = 1 / 25
    with juanji.no_grad():
        out = blur(juanji.tensor(gray[None, None])).numpy()[0, 0]
        colour = colour_blur(juanji.tensor(np.ascontiguousarray(
            photo.transpose(2, 0, 1)[None]))).numpy()[0].transpose(1, 2, 0)

    def roughness(a):
        return float(np.abs(np.diff(a, axis=1)).mean())

    print(f"gray {gray.shape} -> {out.shape}; pixel-to-pixel change {roughness(gray):.4f} -> "
          f"{roughness(out):.4f}")
    assert roughness(out) < roughness(gray)
    path = Path(args.out) / "mean_blur.png"
    write_image(path, hstack([caption(gray, "gray"), caption(out, "5x5 mean"),
                              caption(photo, "colour"), caption(colour, "per-channel mean")]))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
