"""`juanji onnx`: look inside an ONNX file, run it, and check juanji against onnxruntime.

    juanji onnx inspect FILE
    juanji onnx run FILE --input IMAGE|ARRAY.npy [--size HxW] [--layout nchw|nhwc]
                    [--mean 0.485,0.456,0.406] [--std 0.229,0.224,0.225] [--top-k 5]
    juanji onnx check FILE [--batch-size 1] [--size HxW] [--seed 0]
    juanji onnx export RUN_FOLDER|MODEL_NAME --out FILE [--input CxHxW] [--opset 17]
                       [--batch N]

`juanji summary FILE.onnx [--input 3x224x224]` tabulates an imported model (summary_model).
Every failure is one line: a file juanji cannot read or run names the file and the nodes.
"""

import os
from collections import Counter

import numpy as np

from juanji.cli import CLIError
from juanji.cli.analysis import parse_dims, parse_int

CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
DEFAULT_SIZE = (224, 224)  # what dynamic image sizes become for `check`
TOLERANCE = 1e-4  # check: |juanji - onnxruntime| <= TOLERANCE * (1 + |onnxruntime|)


def register(subcommands):
    onnx = subcommands.add_parser(
        "onnx", help="inspect, run, check and export ONNX models",
        description="Read an ONNX model (from PyTorch, Paddle, Keras/TensorFlow, ...) with "
                    "juanji.onnx.load: list what it holds, run it on an image or array, or "
                    "compare juanji's outputs with onnxruntime's; or export a juanji run or "
                    "zoo model as ONNX.")
    onnx.set_defaults(run=_no_action)
    actions = onnx.add_subparsers(dest="action", metavar="ACTION")

    inspect = actions.add_parser(
        "inspect", help="inputs, outputs, opset, producer, op counts, parameters",
        description="Print the graph's inputs and outputs, opset and producer, how many "
                    "nodes of each op it has, its weights and juanji's parameters, and every "
                    "node juanji cannot run.")
    inspect.add_argument("file", metavar="FILE")
    inspect.set_defaults(run=run_inspect)

    run = actions.add_parser(
        "run", help="run a model on an image or a .npy array",
        description="Run the model on one image (resized to --size or the model's declared "
                    "size, scaled to [0, 1], then (x - mean) / std per channel) or on an "
                    "array from a .npy file (fed as is; a batch axis is added when it lacks "
                    "one). Prints every output's shape and, for (N, K) outputs, the top-k.")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--input", required=True, help="an image file, or an array as .npy")
    run.add_argument("--size", default=None, help="image size HxW (default: the model's)")
    run.add_argument("--layout", default=None, choices=("nchw", "nhwc"),
                     help="the model's input layout (default: guessed from its input shape)")
    run.add_argument("--mean", default=None, help="per-channel mean after scaling to [0, 1]")
    run.add_argument("--std", default=None, help="per-channel std after scaling to [0, 1]")
    run.add_argument("--top-k", default="5", help="classes shown per sample (default 5)")
    run.set_defaults(run=run_run)

    check = actions.add_parser(
        "check", help="compare juanji with onnxruntime on a random input",
        description="Run juanji and onnxruntime on the same random normal input and print "
                    "the largest difference of every output. Exits 1 when a difference "
                    f"exceeds {TOLERANCE:g} + {TOLERANCE:g} * |onnxruntime's value|.")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--batch-size", default="1", help="size of a dynamic batch dimension")
    check.add_argument("--size", default=None,
                       help=f"sizes of the other dynamic dimensions, e.g. 640x640 (default "
                            f"{DEFAULT_SIZE[0]} each)")
    check.add_argument("--seed", default="0", help="seed of the random input")
    check.set_defaults(run=run_check)

    export = actions.add_parser(
        "export", help="write a trained run or a zoo model as an ONNX file",
        description="Trace one forward of a run folder's model (its newest checkpoint) or of "
                    "a freshly initialised zoo model on a random input with "
                    "juanji.onnx.export, write the file, check it with onnx.checker "
                    "(full_check) and print its inputs, outputs and parameter count.")
    export.add_argument("source", metavar="RUN_FOLDER|MODEL_NAME")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument("--input", default=None,
                        help="input size CxHxW without the batch (default: the run's or the "
                             "model's own)")
    export.add_argument("--opset", default="17", help="ONNX opset (default 17)")
    export.add_argument("--batch", default=None,
                        help="a fixed batch size N in the file (default: a dynamic batch)")
    export.set_defaults(run=run_export)


def _no_action(args):
    raise CLIError("choose an action: inspect, run, check or export (see juanji onnx --help)",
                   usage=True)


# ---- loading -------------------------------------------------------------------------------


def _one_line(path, error):
    from juanji.onnx import OnnxImportError

    if isinstance(error, OnnxImportError) and error.problems:
        shown = "; ".join(error.problems[:3])
        more = f"; and {len(error.problems) - 3} more" if len(error.problems) > 3 else ""
        return (f"{path}: {len(error.problems)} node(s) juanji cannot run: {shown}{more} "
                f"(juanji onnx inspect lists them all)")
    return " ".join(str(error).split())


def load_model(path):
    """juanji.onnx.load(path), its failures as one-line CLIErrors."""
    try:
        import juanji.onnx

        return juanji.onnx.load(path)
    except ImportError as error:  # the optional onnx package
        raise CLIError(str(error)) from None
    except ValueError as error:  # OnnxImportError and the loader's checks
        raise CLIError(_one_line(path, error)) from None


def _single_input(model, path):
    if len(model._inputs) != 1:
        raise CLIError(f"{path} takes {len(model._inputs)} inputs {model.input_names}; this "
                       f"command feeds models with one input")
    return model._inputs[0]


def _shown(dims):
    return "?" if dims is None else "[" + ", ".join(
        str(d) if isinstance(d, int) and d > 0 else (d if isinstance(d, str) else "?")
        for d in dims) + "]"


def _fixed(d):
    return isinstance(d, int) and d > 0


# ---- inspect -------------------------------------------------------------------------------


def run_inspect(args):
    from juanji.onnx.loader import value_spec
    from juanji.onnx.reader import declared_bytes, import_onnx, read_model

    try:
        onnx = import_onnx()
        model, _ = read_model(args.file)
    except ImportError as error:
        raise CLIError(str(error)) from None
    except ValueError as error:
        raise CLIError(_one_line(args.file, error)) from None
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    constants = [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute
                 if a.name == "value" and a.type == onnx.AttributeProto.TENSOR]
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    print(f"{args.file}")
    print(f"  producer: {(model.producer_name + ' ' + model.producer_version).strip() or '?'}")
    print(f"  opset:    {opsets} (IR version {model.ir_version})")
    for kind, values in (("input", [v for v in graph.input if v.name not in weights]),
                         ("output", list(graph.output))):
        for value in values:
            name, dtype, dims = value_spec(value)
            print(f"  {kind + ':':9s} {name} {dtype or '?'} {_shown(dims)}")
    ops = Counter(node.op_type if node.domain in ("", "ai.onnx") else
                  f"{node.domain}.{node.op_type}" for node in graph.node)
    print(f"  ops:      {len(graph.node)} nodes: " +
          ", ".join(f"{op} {n}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1],
                                                                                  kv[0]))))
    tensors = list(weights.values()) + constants
    floats = [t for t in tensors if t.data_type in (1, 10, 11, 16)]  # float, f16, f64, bf16
    values = sum(declared_bytes(t)[0] for t in floats)
    print(f"  weights:  {values:,} float values in {len(floats)} tensors "
          f"({len(weights)} initializers, {len(constants)} Constant nodes)")
    import juanji.onnx

    try:
        module = juanji.onnx.load(args.file)
    except juanji.onnx.OnnxImportError as error:
        if not error.problems:
            raise CLIError(_one_line(args.file, error)) from None
        print(f"  unsupported: {len(error.problems)} node(s) juanji cannot run:")
        for line in error.problems:
            print(f"    {line}")
        return 0
    params = list(module.parameters())
    print(f"  juanji:   {sum(p.numel() for p in params):,} parameters in {len(params)} "
          f"tensors, {len(module._layers)} layers; every op is supported")
    return 0


# ---- run -----------------------------------------------------------------------------------


def _floats(text, option, count):
    """'0.5,0.5,0.5' (or one value for every channel) -> float32 array of `count`."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise CLIError(f"{option} must be {count} numbers joined by ',' (one per channel) or "
                       f"one number; got {text!r}")
    return np.array(values, np.float32)


def _layout(dims, given):
    if given:
        return given
    if len(dims) == 4 and not _fixed(dims[1]) and _fixed(dims[3]) and dims[3] in CHANNEL_MODES:
        return "nhwc"
    return "nchw"


def _image_input(args, dims):
    """The image at args.input as a (1, C, H, W) or (1, H, W, C) float32 array."""
    from PIL import Image

    if len(dims) != 4:
        raise CLIError(f"the model's input has rank {len(dims)} {_shown(dims)}; an image "
                       f"feeds a rank-4 input (give an array as .npy instead)")
    layout = _layout(dims, args.layout)
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "nchw" else (3, 1, 2)
    channels = dims[c_axis] if _fixed(dims[c_axis]) else 3
    if channels not in CHANNEL_MODES:
        raise CLIError(f"the model's input {_shown(dims)} has {channels} channels in layout "
                       f"{layout}; an image gives 1, 3 or 4 (try --layout or a .npy array)")
    if args.size is not None:
        height, width = parse_dims(args.size, "--size", 2, "224x224")
    elif _fixed(dims[h_axis]) and _fixed(dims[w_axis]):
        height, width = dims[h_axis], dims[w_axis]
    else:
        height = width = None
    try:
        with Image.open(args.input) as image:
            image = image.convert(CHANNEL_MODES[channels])
            if height is not None:
                image = image.resize((width, height), Image.BILINEAR)
            pixels = np.asarray(image, np.float32) / 255  # (H, W) or (H, W, C)
    except OSError as error:
        raise CLIError(f"{args.input}: cannot read the image ({error})") from None
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], channels)
    mean = _floats(args.mean or "0", "--mean", channels)
    std = _floats(args.std or "1", "--std", channels)
    if np.any(std == 0):
        raise CLIError(f"--std must not contain 0; got {args.std!r}")
    pixels = (pixels - mean) / std  # (H, W, C)
    return (pixels.transpose(2, 0, 1) if layout == "nchw" else pixels)[None]


def _array_input(args, dims):
    if args.size is not None or args.layout is not None:
        raise CLIError("--size and --layout apply to images; a .npy array is fed as it is")
    try:
        array = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CLIError(f"{args.input}: cannot read the array ({error})") from None
    if dims is not None and array.ndim == len(dims) - 1:
        array = array[None]  # one sample: add the batch axis
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def run_run(args):
    import juanji

    if not os.path.isfile(args.input):
        raise CLIError(f"--input: no file at {args.input!r}")
    top_k = parse_int(args.top_k, "--top-k", 1)
    model = load_model(args.file)
    _, _, dims = _single_input(model, args.file)
    if args.input.lower().endswith(".npy"):
        x = _array_input(args, dims)
    else:
        x = _image_input(args, dims if dims is not None else [None] * 4)
    with juanji.no_grad():
        outputs = model(x)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    print(f"input: {list(x.shape)}")
    for name, output in zip(model.output_names, outputs):
        values = output.data
        print(f"{name}: shape {list(values.shape)}")
        if values.ndim == 2 and values.shape[1] > 1:
            k = min(top_k, values.shape[1])
            for row, scores in enumerate(values):
                best = np.argsort(-scores, kind="stable")[:k]
                print(f"  sample {row}: top-{k}: " +
                      ", ".join(f"{i} ({scores[i]:.4f})" for i in best))
    return 0


# ---- check ---------------------------------------------------------------------------------


def _random_inputs(model, batch, size, rng):
    """{name: random normal float32 array} with dynamic dims filled in (batch, then size)."""
    feeds = {}
    for name, dtype, dims in model._inputs:
        if dims is None:
            raise CLIError(f"input {name!r} has no declared shape; juanji onnx check needs one")
        if dtype is not None and not np.issubdtype(dtype, np.floating):
            raise CLIError(f"input {name!r} is {dtype}; juanji onnx check feeds random float "
                           f"inputs only")
        spare = list(size) if size is not None else None
        shape = []
        for axis, d in enumerate(dims):
            if _fixed(d):
                shape.append(d)
            elif axis == 0:
                shape.append(batch)
            elif spare is None:
                shape.append(DEFAULT_SIZE[0])
            elif spare:
                shape.append(spare.pop(0))
            else:
                raise CLIError(f"input {name!r} {_shown(dims)} has more dynamic dimensions "
                               f"than --size gives")
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def run_check(args):
    import juanji

    try:
        import onnxruntime
    except ImportError:
        raise CLIError("juanji onnx check compares with onnxruntime, which is not installed: "
                       "pip install onnxruntime") from None
    batch = parse_int(args.batch_size, "--batch-size", 1)
    size = None if args.size is None else parse_dims(args.size, "--size", None, "640x640")
    rng = np.random.default_rng(parse_int(args.seed, "--seed", 0))
    model = load_model(args.file)
    feeds = _random_inputs(model, batch, size, rng)
    try:
        session = onnxruntime.InferenceSession(args.file, providers=["CPUExecutionProvider"])
        expected = session.run(model.output_names, feeds)
    except Exception as error:  # onnxruntime's own error types
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CLIError(f"onnxruntime could not run {args.file}: {first}") from None
    with juanji.no_grad():
        got = model(*feeds.values())
    got = got if isinstance(got, tuple) else (got,)
    print("input: " + ", ".join(f"{name} {list(x.shape)}" for name, x in feeds.items()))
    worst, worst_name, ok = 0.0, None, True
    for name, ref, value in zip(model.output_names, expected, got):
        value = value.data
        if value.shape != ref.shape:
            print(f"{name}: juanji shape {list(value.shape)} != onnxruntime {list(ref.shape)}")
            ok = False
            continue
        diff = np.abs(value.astype(np.float64) - ref)
        largest = float(diff.max()) if diff.size else 0.0
        within = bool(np.all(diff <= TOLERANCE * (1 + np.abs(ref))))
        ok = ok and within
        print(f"{name}: shape {list(ref.shape)}, largest difference {largest:.3g} "
              f"(|onnxruntime| up to {float(np.abs(ref).max()) if ref.size else 0:.3g})"
              f"{'' if within else ' TOO LARGE'}")
        if largest >= worst:
            worst, worst_name = largest, name
    verdict = "juanji matches onnxruntime" if ok else "juanji DIFFERS from onnxruntime"
    print(f"{verdict}: largest difference {worst:.3g} (output {worst_name!r}); tolerance "
          f"{TOLERANCE:g} + {TOLERANCE:g} * |onnxruntime|")
    return 0 if ok else 1


# ---- juanji summary FILE.onnx --------------------------------------------------------------


def summary_model(path, input_text=None, num_classes=None):
    """(model, input size without the batch) for `juanji summary FILE.onnx [--input ...]`."""
    if num_classes is not None:
        raise CLIError("--num-classes does not apply to an ONNX model: its classifier is fixed")
    model = load_model(path)
    name, _, dims = _single_input(model, path)
    if dims is None or len(dims) < 2:
        raise CLIError(f"{path}: input {name!r} has shape {_shown(dims)}; juanji summary needs "
                       f"a batch axis and a known rank")
    example = "x".join(str(d) if _fixed(d) else "224" for d in dims[1:])
    if input_text is not None:
        return model, parse_dims(input_text, "--input", len(dims) - 1, example)
    if not all(_fixed(d) for d in dims[1:]):
        raise CLIError(f"{path}: input {name!r} has shape {_shown(dims)} with dynamic sizes; "
                       f"give them with --input, e.g. --input {example}")
    return model, tuple(dims[1:])


# ---- export --------------------------------------------------------------------------------


def _export_source(source, input_text):
    """(model in eval mode, (C, H, W)) of a run folder or a zoo model name."""
    from juanji.cli.analysis import build_model
    from juanji.models import MODELS

    if os.path.exists(source):
        from juanji.viz.run import load_run_model

        model, _, size = load_run_model(source)
        if input_text is not None:  # the model keeps the run's arguments
            size = parse_dims(input_text, "--input", 3, "x".join(map(str, size)))
    elif source in MODELS:
        model, size = build_model(source, input_text)
    else:
        raise CLIError(f"{source!r} is neither a run folder nor a model name; models: "
                       f"{', '.join(sorted(MODELS))}")
    return model.eval(), tuple(size)


def run_export(args):
    import juanji.onnx
    from juanji.onnx.exporter import MIN_OPSET
    from juanji.onnx.reader import import_onnx

    opset = parse_int(args.opset, "--opset", MIN_OPSET)
    batch = None if args.batch is None else parse_int(args.batch, "--batch", 1)
    try:
        onnx = import_onnx()
    except ImportError as error:
        raise CLIError(str(error)) from None
    model, size = _export_source(args.source, args.input)
    # a dynamic batch is traced with 2 samples: a batch of 1 hides the batch axis
    x = np.random.default_rng(0).standard_normal((batch or 2, *size)).astype(np.float32)
    try:
        juanji.onnx.export(model, x, args.out, opset=opset, dynamic_batch=batch is None)
    except ValueError as error:  # an op with no ONNX form, a bad opset or input size
        raise CLIError(" ".join(str(error).split())) from None
    try:
        onnx.checker.check_model(args.out, full_check=True)
    except onnx.checker.ValidationError as error:
        first = (str(error).strip().splitlines() or ["?"])[0]
        raise CLIError(f"{args.out}: the exported file fails onnx.checker: {first}") from None
    proto = onnx.load(args.out, load_external_data=False)
    from juanji.onnx.loader import value_spec

    print(f"wrote {args.out} (opset {opset}, checked with onnx.checker full_check)")
    weights = {t.name for t in proto.graph.initializer}
    for kind, values in (("input", [v for v in proto.graph.input if v.name not in weights]),
                         ("output", list(proto.graph.output))):
        for value in values:
            name, dtype, dims = value_spec(value)
            print(f"  {kind + ':':7s} {name} {dtype or '?'} {_shown(dims)}")
    params = list(model.parameters())
    print(f"  parameters: {sum(p.numel() for p in params):,} in {len(params)} tensors "
          f"({len(weights)} initializers in the file)")
    return 0
