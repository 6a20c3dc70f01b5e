"""Load a trained model back from a run folder for drawing.

A run folder holds `model.safetensors` (the state_dict) and `run.json`. Two layouts of
run.json are read: the trainer's ({"config": {"model": name, "model_args": {...}, ...}}, via
juanji.io.checkpoint.load_run) and the flat one ({"model": name, "num_classes": n,
"in_channels": c, "input_size": [C, H, W]}).
"""

import json
from pathlib import Path

MODEL_FILE, RUN_FILE = "model.safetensors", "run.json"


def run_folder(path):
    """The run folder of `path` (the folder itself, or a file inside it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"run folder not found: {path}")
    return path.parent if path.is_file() else path


def read_info(path):
    """The parsed run.json of a run folder."""
    folder = run_folder(path)
    file = folder / RUN_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{folder} is not a run folder: no {RUN_FILE} in it")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from None


def _flat_config(info):
    """{'model', 'model_args', 'input_size'} from either run.json layout."""
    config = info.get("config", info)
    name = config.get("model")
    if not isinstance(name, str):
        raise ValueError("run.json does not say which model was trained (no 'model' name)")
    args = dict(config.get("model_args") or {})
    for key in ("num_classes", "in_channels"):
        if key in config and key not in args:
            args[key] = config[key]
    size = config.get("input_size") or info.get("input_size")
    return name, args, size


def load_run_model(path):
    """(model in eval mode, run info dict, input size (C, H, W)) of a run folder."""
    from juanji.models import MODELS

    folder = run_folder(path)
    info = read_info(folder)
    name, args, size = _flat_config(info)
    if name not in MODELS:
        raise ValueError(f"run.json names an unknown model {name!r}; known models: "
                         f"{', '.join(sorted(MODELS))}")
    model = None
    if "config" in info:
        try:
            from juanji.io.checkpoint import load_run
        except ImportError:
            load_run = None
        if load_run is not None:
            model, _ = load_run(folder)
    if model is None:
        model = MODELS[name](**args)
        weights = folder / MODEL_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{folder} has no {MODEL_FILE}")
        from safetensors.numpy import load_file

        try:
            state = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{weights} is not a readable safetensors file: {exc}") from None
        model.load_state_dict(state)
    model.eval()
    return model, info, _input_size(name, args, size, model)


def _input_size(name, args, size, model):
    if size:
        return tuple(int(v) for v in size)
    try:
        from juanji.models import DEFAULT_INPUTS
    except ImportError:
        DEFAULT_INPUTS = {}
    if name in DEFAULT_INPUTS:
        c, h, w = DEFAULT_INPUTS[name]
        side = args.get("input_size")  # factories such as lenet5 take one side length
        if isinstance(side, int):
            h = w = side
        return (args.get("in_channels", c), h, w)
    raise ValueError(f"run.json does not give the input size and {name} has no default one")
