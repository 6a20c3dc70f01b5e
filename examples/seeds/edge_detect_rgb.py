"""Seeds, case 2 (边缘检测RGB彩图): the 3x3 Laplacian / 8 on a colour picture.

The kernel [[-1,-1,-1],[-1,8,-1],[-1,-1,-1]] / 8 is repeated over the 3 input channels
(`np.repeat(w, 3, axis=1)`, weight shape (1, 3, 3, 3)) and the channel responses are summed
into one map. Flat regions give 0, edges give large |response|. The picture is a synthetic
photo-like scene (nothing downloaded), or --image PATH.

    python examples/seeds/edge_detect_rgb.py [--image PATH] [--size 96x128] [--out DIR]
"""

import argparse
from pathlib import Path

import numpy as np

import juanji
from juanji import nn
from juanji.viz.images import caption, hstack, read_image, synthetic_photo, to_uint8, write_image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="an RGB image (default: synthetic)")
    parser.add_argument("--size", default="96x128", help="HxW of the synthetic picture")
    parser.add_argument("--out", default="seed_outputs")
    args = parser.parse_args(argv)

    if args.image:
        photo = read_image(args.image, "RGB")
    else:
        h, w = (int(v) for v in args.size.split("x"))
        photo = synthetic_photo(h, w)

    w = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float32) / 8
    w = np.repeat(w.reshape(1, 1, 3, 3), 3, axis=1)  # [1, 1, 3, 3] -> [1, 3, 3, 3]
    conv = nn.Conv2d(3, 1, kernel_size=3, bias=False)
    conv.weight.data[...] = w

    x = photo.transpose(2, 0, 1)[None]  # [H, W, C] -> [N, C, H, W]
    with juanji.no_grad():
        out = conv(juanji.tensor(np.ascontiguousarray(x))).numpy()[0, 0]

    strong = np.abs(out) > 0.25
    print(f"image {photo.shape} -> response {out.shape}; "
          f"{strong.mean():.1%} of pixels are strong edges (|response| > 0.25)")
    # the sky is smooth: almost no response there; the house's outline is an edge
    sky = np.abs(out[: out.shape[0] // 5, : out.shape[1] // 2]).mean()
    assert sky < np.abs(out).mean(), (sky, np.abs(out).mean())

    path = Path(args.out) / "edge_rgb.png"
    write_image(path, hstack([caption(photo, "input"),
                              caption(to_uint8(out, "abs"), "|Laplacian|")]))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
