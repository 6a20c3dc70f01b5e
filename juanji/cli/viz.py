"""`juanji viz ...` and `juanji filter`: pictures of what a network does.

    juanji viz filters --checkpoint RUN [--compare RUN2] [--out PATH]
    juanji viz features --checkpoint RUN --image IMG [--layers conv1,conv2] [--out PATH]
    juanji viz features --model FILE.onnx --image IMG [--input CxHxW] [--layers ...]
    juanji viz conv --kernel 3 --stride 2 --padding 1 [--dilation 2] [--transposed]
                    [--input 5x5] [--out conv.gif]
    juanji viz receptive-field MODEL --layer NAME [--image IMG] [--input CxHxW] [--out PATH]
    juanji filter IMAGE --kernel edge|laplacian|sobel-x|sobel-y|mean|gaussian|sharpen
                  | --weights "1,0,-1" --out PATH

Every command prints the path of each file it wrote.
"""

from pathlib import Path

import numpy as np

from juanji.cli import CLIError
from juanji.cli.analysis import build_model, parse_dims, parse_int, parse_kernel, parse_pair


def register(subcommands):
    viz = subcommands.add_parser("viz", help="draw filters, feature maps, conv arithmetic, "
                                             "receptive fields")
    kinds = viz.add_subparsers(dest="picture", metavar="PICTURE")

    filters = kinds.add_parser("filters", help="first-layer filters of a trained run")
    filters.add_argument("--checkpoint", required=True, help="a run folder")
    filters.add_argument("--compare", default=None, help="a second run drawn beside it")
    filters.add_argument("--out", default=None,
                         help="PNG path (default: RUN/filters_<layer>.png)")
    filters.add_argument("--ncols", default="8")
    filters.add_argument("--invert", action="store_true", help="positive weights dark")
    filters.set_defaults(run=run_filters)

    features = kinds.add_parser("features", help="feature maps of a trained run on an image")
    features.add_argument("--checkpoint", default=None, help="a run folder")
    features.add_argument("--model", default=None,
                          help="an .onnx file instead of a run (NCHW input; the image is fed "
                               "in [0, 1])")
    features.add_argument("--input", default=None,
                          help="with --model: the input size CxHxW where the file leaves it "
                               "dynamic")
    features.add_argument("--image", required=True, help="an image file")
    features.add_argument("--layers", default=None, help="comma-separated layer names "
                                                         "(default: every Conv2d)")
    features.add_argument("--max-channels", default="16")
    features.add_argument("--out", default=None,
                          help="PNG path (default: in the run folder, or beside the .onnx)")
    features.set_defaults(run=run_features)

    conv = kinds.add_parser("conv", help="animate a conv (or transposed conv) sliding")
    conv.add_argument("--kernel", default="3", help="K or KHxKW")
    conv.add_argument("--stride", default="1")
    conv.add_argument("--padding", default="0")
    conv.add_argument("--dilation", default="1")
    conv.add_argument("--transposed", action="store_true")
    conv.add_argument("--output-padding", default="0", help="transposed only")
    conv.add_argument("--input", default="5x5", help="input HxW (at most 32x32)")
    conv.add_argument("--duration-ms", default="600", help="time per frame")
    conv.add_argument("--out", default="conv.gif", help="GIF path")
    conv.set_defaults(run=run_conv)

    rf = kinds.add_parser("receptive-field", help="draw what one unit of a layer sees")
    rf.add_argument("model", metavar="MODEL", help="a name from `juanji models`")
    rf.add_argument("--layer", required=True, help="a layer name, as in `juanji summary`")
    rf.add_argument("--image", default=None, help="image to draw on (default: synthetic)")
    rf.add_argument("--input", default=None, help="input size CxHxW (default: the model's)")
    rf.add_argument("--unit", default=None, help="output unit 'row,col' (default: centre)")
    rf.add_argument("--out", default=None, help="PNG path")
    rf.set_defaults(run=run_receptive_field)

    filt = subcommands.add_parser("filter", help="filter an image with a hand-set kernel",
                                  description="Convolve an image with a classic kernel using "
                                              "juanji's conv2d (RGB: one kernel per channel, "
                                              "summed, as in the seeds).")
    filt.add_argument("image", metavar="IMAGE")
    filt.add_argument("--kernel", default=None,
                      help="edge, laplacian, sobel-x, sobel-y, mean, gaussian or sharpen")
    filt.add_argument("--weights", default=None,
                      help="your own kernel: '1,0,-1', rows separated by ';'")
    filt.add_argument("--per-channel", action="store_true",
                      help="filter each colour channel on its own (keeps colour)")
    filt.add_argument("--stride", default="1")
    filt.add_argument("--padding", default="0")
    filt.add_argument("--scale", default="auto",
                      help="how responses become pixels: auto, abs, minmax, symmetric, clip")
    filt.add_argument("--out", required=True, help="output image path")
    filt.set_defaults(run=run_filter)


def _wrote(path, what=""):
    print(f"wrote {path}{f' ({what})' if what else ''}")


def run_filters(args):
    from juanji.viz.filters import first_conv, save_filter_comparison, save_filters
    from juanji.viz.run import load_run_model, run_folder

    ncols = parse_int(args.ncols, "--ncols", 1)
    model, _, _ = load_run_model(args.checkpoint)
    name, weight = first_conv(model)
    folder = run_folder(args.checkpoint)
    if args.compare is None:
        # not filters.png: the trainer writes that one after each epoch
        out = Path(args.out) if args.out else folder / f"filters_{name.replace('.', '_')}.png"
        save_filters(weight, out, ncols=ncols, title=f"{folder.name}: {name} "
                     f"{'x'.join(map(str, weight.shape))}", invert=args.invert)
        _wrote(out, f"{weight.shape[0]} filters of layer {name}")
        return 0
    other, _, _ = load_run_model(args.compare)
    other_name, other_weight = first_conv(other)
    other_folder = run_folder(args.compare)
    out = Path(args.out) if args.out else folder / f"filters_vs_{other_folder.name}.png"
    save_filter_comparison([weight, other_weight],
                           [f"{folder.name}: {name}", f"{other_folder.name}: {other_name}"],
                           out, ncols=ncols, invert=args.invert)
    _wrote(out, f"{folder.name} beside {other_folder.name}")
    return 0


def _normalisation(info):
    """(mean, std) the run's training data was normalised with, if the run says."""
    config = info.get("config", info)
    if "mean" in config and "std" in config:
        return config["mean"], config["std"]
    try:
        from juanji.cli.train import DATASETS
    except ImportError:
        return None
    entry = DATASETS.get(config.get("data"))
    return (entry[1], entry[2]) if entry else None


def run_features(args):
    from juanji.viz.features import feature_grid, feature_maps, prepare_input
    from juanji.viz.images import write_image
    from juanji.viz.run import load_run_model, run_folder

    max_channels = parse_int(args.max_channels, "--max-channels", 1)
    if (args.checkpoint is None) == (args.model is None):
        raise CLIError("give one of --checkpoint RUN and --model FILE.onnx", usage=True)
    if args.model is not None:
        from juanji.cli.onnx import summary_model

        model, size = summary_model(args.model, args.input)
        info, folder = {}, Path(args.model).parent
    else:
        if args.input is not None:
            raise CLIError("--input applies to --model FILE.onnx; a run has its input size",
                           usage=True)
        model, info, size = load_run_model(args.checkpoint)
        folder = run_folder(args.checkpoint)
    image = prepare_input(args.image, size)  # (C, H, W) in [0, 1]
    x = image
    norm = _normalisation(info)
    if norm is not None:
        mean = np.asarray(norm[0], dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(norm[1], dtype=np.float32).reshape(-1, 1, 1)
        x = (image - mean) / std
    layers = None if args.layers is None else [n for n in args.layers.split(",") if n]
    maps = feature_maps(model, x, layers)
    out = Path(args.out) if args.out else folder / f"features_{Path(args.image).stem}.png"
    write_image(out, feature_grid(maps, max_channels, image=image))
    _wrote(out, "maps of " + ", ".join(f"{k} {'x'.join(map(str, v.shape))}"
                                       for k, v in maps.items()))
    return 0


def run_conv(args):
    from juanji.viz.conv_animation import save_conv_animation

    size = parse_dims(args.input, "--input", 2, "5x5")
    path, anim = save_conv_animation(
        args.out, size, parse_kernel(args.kernel), parse_pair(args.stride, "--stride", 1),
        parse_pair(args.padding, "--padding", 0), parse_pair(args.dilation, "--dilation", 1),
        args.transposed, parse_pair(args.output_padding, "--output-padding", 0),
        parse_int(args.duration_ms, "--duration-ms", 1))
    _wrote(path, f"{anim.frame_count} frames; {anim.title}")
    return 0


def _parse_unit(text):
    parts = str(text).split(",")
    if len(parts) != 2:
        raise CLIError(f"--unit must be 'row,col' such as 3,4; got {text!r}")
    return tuple(parse_int(p, "--unit", 0) for p in parts)


def run_receptive_field(args):
    from juanji.analysis.trace import trace
    from juanji.viz.features import prepare_input
    from juanji.viz.images import synthetic_photo, to_gray, write_image
    from juanji.viz.receptive_field import draw_receptive_field

    model, size = build_model(args.model, args.input)
    calls = trace(model, size).calls
    by_key = {call.key: call for call in calls if call.key}
    if args.layer not in by_key:
        names = list(by_key)
        shown = ", ".join(names[:15]) + (", ..." if len(names) > 15 else "")
        raise CLIError(f"no layer named {args.layer!r} in {args.model}; its layers are: "
                       f"{shown} (see `juanji summary {args.model}`)")
    call = by_key[args.layer]
    shape = call.output_shapes[0] if call.output_shapes else ()
    if len(shape) != 4:
        raise CLIError(f"layer {args.layer!r} has no spatial output (shape {list(shape)}); "
                       f"each of its units sees the whole input")
    if args.image is None:
        picture = synthetic_photo(size[1], size[2])
        picture = to_gray(picture) if size[0] == 1 else picture
    else:
        picture = prepare_input(args.image, size)
        picture = picture[0] if size[0] == 1 else picture.transpose(1, 2, 0)
    unit = None if args.unit is None else _parse_unit(args.unit)
    image, unit, box = draw_receptive_field(picture, call.rf, shape[2:], unit)
    out = Path(args.out) if args.out else \
        Path(f"receptive_field_{args.model}_{args.layer.replace('.', '_')}.png")
    write_image(out, image)
    where = "outside the image" if box is None else \
        f"input rows {box[0]}..{box[2]}, columns {box[1]}..{box[3]}"
    print(f"{args.model} {args.layer} ({call.type}), output {list(shape[1:])}: receptive "
          f"field {call.rf.describe()}; unit {unit} sees {where}")
    _wrote(out)
    return 0


def run_filter(args):
    from juanji.viz.images import read_image, to_uint8, write_image
    from juanji.viz.kernels import apply_kernel, get_kernel, parse_weights

    if (args.kernel is None) == (args.weights is None):
        raise CLIError("give exactly one of --kernel NAME or --weights '1,0,-1'")
    kernel = get_kernel(args.kernel) if args.kernel else parse_weights(args.weights)
    scale = args.scale
    if scale not in ("auto", "abs", "minmax", "symmetric", "clip"):
        raise CLIError(f"--scale must be auto, abs, minmax, symmetric or clip; got {scale!r}")
    if scale == "auto":  # edge-like kernels (weights sum to 0) respond with a sign
        scale = "abs" if abs(float(kernel.sum())) < 1e-6 else "minmax"
    image = read_image(args.image)
    out = apply_kernel(image, kernel, "depthwise" if args.per_channel else "sum",
                       parse_int(args.stride, "--stride", 1), parse_int(args.padding,
                                                                         "--padding", 0))
    path = write_image(args.out, to_uint8(out, scale))
    shape = "x".join(map(str, out.shape))
    _wrote(path, f"{shape} response, min {out.min():.3g}, max {out.max():.3g}, kernel "
                 f"{kernel.shape[0]}x{kernel.shape[1]}, scale {scale}")
    return 0
