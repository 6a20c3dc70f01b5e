"""Seeds, 感受野 (receptive field): walk a small stack layer by layer.

    r_out = r_in + (K - 1) * j_in,   j_out = j_in * S
Two 3x3 convs see 5x5 (the reason two 3x3 convs can replace one 5x5 with fewer parameters:
2 * 9 = 18 against 25 per channel pair); a 2x2 pool doubles the jump, so the next 3x3 conv
adds 2 * 2 instead of 2: conv3 -> pool2 -> conv3 sees 8x8. Deeper layers see more.

    python examples/seeds/receptive_field_walk.py [--size 32] [--out DIR]
"""

import argparse
from pathlib import Path

from juanji import nn
from juanji.analysis import receptive_fields, summary
from juanji.viz.images import caption, hstack, synthetic_photo, to_gray, write_image
from juanji.viz.receptive_field import draw_receptive_field


def stack():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(),        # r 3
        nn.Conv2d(8, 8, 3), nn.ReLU(),        # r 5: two 3x3 = one 5x5
        nn.MaxPool2d(2),                      # r 6, jump 2
        nn.Conv2d(8, 16, 3), nn.ReLU(),       # r 6 + 2*2 = 10
        nn.MaxPool2d(2),                      # r 12, jump 4
        nn.Conv2d(16, 16, 3, dilation=2),     # r 12 + 4*4 = 28 (dilation spreads the taps)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="input side")
    parser.add_argument("--out", default="seed_outputs")
    args = parser.parse_args(argv)

    model = stack()
    fields = receptive_fields(model, (1, args.size, args.size))
    print(f"{'layer':8s} {'type':10s} {'receptive field':>16s}  jump  start")
    for name, rf in fields.items():
        if not name:
            continue
        layer = type(dict(model.named_modules())[name]).__name__
        print(f"{name:8s} {layer:10s} {rf.short():>16s}  {rf.jump_short():>4s}  "
              f"{float(rf.start[0]):g}")
    assert [int(fields[n].size[0]) for n in ("0", "2", "4", "5", "7", "8")] == \
        [3, 5, 6, 10, 12, 28]

    # the same conv3 -> pool2 -> conv3 claim on its own
    small = receptive_fields(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2),
                                           nn.Conv2d(1, 1, 3)), (1, 16, 16))
    print(f"conv3 -> pool2 -> conv3 sees {small['2'].short()}")
    assert small["2"].size == (8, 8)

    s = summary(model, (1, args.size, args.size))
    picture = to_gray(synthetic_photo(args.size, args.size))
    panels = []
    for name in ("0", "2", "5", "8"):
        row = s.row(name)
        image, unit, _ = draw_receptive_field(picture, row.rf, row.output_shape[2:],
                                              min_px=128)
        panels.append(caption(image, f"layer {name}: {row.rf.short()}"))
    path = Path(args.out) / "receptive_field_walk.png"
    write_image(path, hstack(panels))
    print(f"wrote {path}")
    return fields


if __name__ == "__main__":
    main()
