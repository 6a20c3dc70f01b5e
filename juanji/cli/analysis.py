"""`juanji summary` and `juanji explain`: the numbers a student works out by hand.

    juanji summary resnet18 --input 3x224x224 [--batch-size 1] [--depth 2] [--json]
    juanji explain conv2d --input 1x28x28 --out-channels 30 --kernel 5 [--stride 1]
                   [--padding 0] [--dilation 1] [--groups 1]
    juanji explain pool --input 30x24x24 --kernel 2 [--stride 2] [--ceil-mode] [--kind avg]
    juanji explain conv-transpose --input 16x7x7 --out-channels 8 --kernel 4 --stride 2
                   --padding 1 [--output-padding 0]

Arguments are parsed here rather than by argparse types so that every mistake is reported as
one line naming the option, the value and what was expected.
"""

import inspect
import json
import sys
from pathlib import Path

from juanji.cli import CLIError

EXPLAIN_OPS = ("conv2d", "pool", "conv-transpose")


# ---- argument parsing shared with juanji.cli.viz ---------------------------------------------


def parse_dims(text, option, count=None, example="3x224x224"):
    """'3x224x224' -> (3, 224, 224): positive ints joined by 'x' (exactly `count` of them)."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims) or (count is not None and len(dims) != count):
        raise CLIError(f"{option} must look like {example} ({count or 'some'} positive "
                       f"integers joined by 'x'); got {text!r}")
    return dims


def parse_kernel(text, option="--kernel"):
    """'5' -> (5, 5); '1x3' -> (1, 3)."""
    dims = parse_dims(text, option, None, "5 or 1x3")
    if len(dims) == 1:
        return dims * 2
    if len(dims) != 2:
        raise CLIError(f"{option} must be one size or HxW such as 1x3; got {text!r}")
    return dims


def parse_int(text, option, minimum=0):
    """An int >= minimum from an option's text, or a one-line CLIError."""
    try:
        value = int(str(text))
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise CLIError(f"{option} must be an integer >= {minimum}; got {text!r}")
    return value


def parse_pair(text, option, minimum=0):
    """'1' -> (1, 1); '1x2' -> (1, 2) (ints >= minimum)."""
    parts = str(text).lower().split("x")
    if len(parts) not in (1, 2):
        raise CLIError(f"{option} must be one integer or HxW; got {text!r}")
    values = tuple(parse_int(p, option, minimum) for p in parts)
    return values * 2 if len(values) == 1 else values


def build_model(name, input_text=None, num_classes=None):
    """(model, (C, H, W)) for a registered model name and an optional '--input CxHxW'."""
    from juanji.models import MODELS

    try:
        from juanji.models import DEFAULT_INPUTS
    except ImportError:
        DEFAULT_INPUTS = {}
    if name not in MODELS:
        raise CLIError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    if input_text is None:
        size = tuple(DEFAULT_INPUTS.get(name, (3, 224, 224)))
    else:
        size = parse_dims(input_text, "--input", 3)
    if num_classes is None:
        num_classes = 1000 if size[0] == 3 else 10
    factory = MODELS[name]
    kwargs = {"num_classes": num_classes, "in_channels": size[0]}
    try:
        accepts_size = "input_size" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepts_size = False
    if accepts_size and size[1] == size[2]:
        kwargs["input_size"] = size[1]  # e.g. simple_convnet sizes its first Linear from it
    return factory(**kwargs), size


def write_text(path, text):
    """Write text atomically (creating the folder) and return the Path."""
    from juanji.io.files import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


# ---- commands ------------------------------------------------------------------------------


def register(subcommands):
    summary = subcommands.add_parser(
        "summary", help="per-layer shapes, parameters, MACs and receptive fields",
        description="Trace one forward pass of a zoo model and print a table of every layer: "
                    "input and output shapes, parameters, multiply-adds (MACs) and receptive "
                    "field, with totals and the counting conventions.")
    summary.add_argument("model", metavar="MODEL",
                         help="a name from `juanji models`, or an .onnx file")
    summary.add_argument("--input", default=None,
                         help="input size CxHxW without the batch (default: the model's own)")
    summary.add_argument("--batch-size", default="1", help="batch size of the traced forward")
    summary.add_argument("--num-classes", default=None,
                         help="classifier outputs (default 1000 for 3 channels, else 10)")
    summary.add_argument("--depth", default=None, help="fold rows nested deeper than this")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.add_argument("--out", default=None, help="also write the table/JSON to this file")
    summary.set_defaults(run=run_summary)

    explain = subcommands.add_parser(
        "explain", help="work out one layer's output size, parameters and MACs step by step",
        description="Show the formulas and the numbers put into them for one layer.")
    explain.add_argument("op", metavar="OP", help="conv2d, pool or conv-transpose")
    explain.add_argument("--input", required=True, help="input size CxHxW, e.g. 1x28x28")
    explain.add_argument("--out-channels", default=None, help="number of filters (conv only)")
    explain.add_argument("--kernel", required=True, help="kernel size K or KHxKW")
    explain.add_argument("--stride", default=None, help="default 1 (conv) or the kernel (pool)")
    explain.add_argument("--padding", default="0")
    explain.add_argument("--dilation", default="1")
    explain.add_argument("--groups", default="1")
    explain.add_argument("--output-padding", default=None, help="conv-transpose only")
    explain.add_argument("--ceil-mode", action="store_true", help="pool only")
    explain.add_argument("--kind", default="max", help="pool only: max or avg")
    explain.add_argument("--no-bias", action="store_true", help="conv without bias")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(run=run_explain)


def run_summary(args):
    from juanji.analysis import summary

    batch = parse_int(args.batch_size, "--batch-size", 1)
    depth = None if args.depth is None else parse_int(args.depth, "--depth", 0)
    classes = None if args.num_classes is None else parse_int(args.num_classes,
                                                              "--num-classes", 1)
    if args.model.lower().endswith(".onnx"):  # an imported model (juanji.cli.onnx loads it)
        from juanji.cli.onnx import summary_model

        model, size = summary_model(args.model, args.input, classes)
    else:
        model, size = build_model(args.model, args.input, classes)
    result = summary(model, size, batch_size=batch, name=args.model)
    text = json.dumps(result.to_dict(), indent=2) if args.json else result.table(depth)
    print(text)
    if args.out:
        path = write_text(args.out, text + "\n")
        # with --json, stdout stays pure JSON
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def run_explain(args):
    from juanji.analysis import explain

    if args.op not in EXPLAIN_OPS:
        raise CLIError(f"OP must be one of {', '.join(EXPLAIN_OPS)}; got {args.op!r}")
    size = parse_dims(args.input, "--input", 3, "1x28x28")
    kernel = parse_kernel(args.kernel)
    padding = parse_pair(args.padding, "--padding", 0)
    dilation = parse_pair(args.dilation, "--dilation", 1)
    groups = parse_int(args.groups, "--groups", 1)
    if args.op != "pool" and args.ceil_mode:
        raise CLIError("--ceil-mode applies to pool only")
    if args.op != "conv-transpose" and args.output_padding is not None:
        raise CLIError("--output-padding applies to conv-transpose only")
    if args.op == "pool":
        if args.out_channels is not None:
            raise CLIError("--out-channels does not apply to pool: pooling keeps the channels")
        if args.kind not in ("max", "avg"):
            raise CLIError(f"--kind must be max or avg; got {args.kind!r}")
        stride = None if args.stride is None else parse_pair(args.stride, "--stride", 1)
        result = explain("pool", input_size=size, kernel_size=kernel, stride=stride,
                         padding=padding, dilation=dilation, ceil_mode=args.ceil_mode,
                         kind=args.kind)
    else:
        if args.out_channels is None:
            raise CLIError(f"--out-channels is required for {args.op}")
        out_channels = parse_int(args.out_channels, "--out-channels", 1)
        stride = parse_pair(args.stride or "1", "--stride", 1)
        options = dict(input_size=size, out_channels=out_channels, kernel_size=kernel,
                       stride=stride, padding=padding, dilation=dilation, groups=groups,
                       bias=not args.no_bias)
        if args.op == "conv-transpose":
            options["output_padding"] = parse_pair(args.output_padding or "0",
                                                   "--output-padding", 0)
        result = explain(args.op, **options)
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json
          else result.text())
    return 0
