"""Checkpoints as safetensors (never pickle) and run folders.

A run folder holds:
    model.safetensors      the model's state_dict (PyTorch key names)
    optimizer.safetensors  the optimizer's array state, keys "state.<index>.<name>"
    run.json               what rebuilds the run: model name and arguments, data, settings,
                           epoch, optimizer settings/scalars, scheduler state, metrics history
Every file is written atomically, so an interrupted save leaves the previous checkpoint whole.
"""

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save

from juanji.io.files import atomic_write_bytes, atomic_write_text

MODEL_FILE, OPTIMIZER_FILE, RUN_FILE = "model.safetensors", "optimizer.safetensors", "run.json"


class CheckpointError(ValueError):
    """A checkpoint or run folder that is missing, incomplete or does not match the model."""


def save_state(path, arrays, metadata=None):
    """Write {name: array} to a safetensors file atomically (arrays made contiguous)."""
    # ascontiguousarray would turn 0-d arrays (e.g. an optimizer's step) into 1-d ones
    tensors = {k: v if v.flags.c_contiguous else np.ascontiguousarray(v)
               for k, v in arrays.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    atomic_write_bytes(path, save(tensors, metadata=meta))


def load_state(path):
    """Read a safetensors file into {name: numpy array}; clear error if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc


def _split_optimizer_state(state_dict):
    """Optimizer state -> (arrays for safetensors, JSON-able rest)."""
    arrays, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, np.ndarray):
                arrays[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = _jsonable(value)
    groups = [{k: _jsonable(v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return arrays, {"scalars": scalars, "param_groups": groups}


def _join_optimizer_state(arrays, info):
    state = {}
    for key, value in arrays.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entries in info["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": info["param_groups"]}


def _jsonable(value):
    """Numbers, strings, lists and tuples as JSON; NumPy scalars become Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def save_run(run_dir, model, config, optimizer=None, scheduler=None, epoch=0, history=None):
    """Write the whole run folder; `config` must say how to rebuild the model (see load_run)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_state(run_dir / MODEL_FILE, model.state_dict(), {"format": "juanji"})
    info = {"config": _jsonable(config), "epoch": epoch, "history": _jsonable(history or [])}
    if optimizer is not None:
        arrays, info["optimizer"] = _split_optimizer_state(optimizer.state_dict())
        save_state(run_dir / OPTIMIZER_FILE, arrays)
    if scheduler is not None:
        state = {k: v for k, v in scheduler.state_dict().items() if not callable(v)}
        info["scheduler"] = _jsonable(state)
    atomic_write_text(run_dir / RUN_FILE, json.dumps(info, indent=2) + "\n")


def read_run_info(run_dir):
    """The parsed run.json of a run folder (a folder, or its model.safetensors/run.json path)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a juanji run folder: no {RUN_FILE} in it")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if "config" not in info or "model" not in info["config"]:
        raise CheckpointError(f"{path} does not say which model was trained ('config.model')")
    return info


def load_run(run_dir):
    """Rebuild the model of a run folder and load its weights. Returns (model, info)."""
    from juanji.models import create_model

    info = read_run_info(run_dir)
    run_dir = Path(run_dir)
    run_dir = run_dir.parent if run_dir.is_file() else run_dir
    config = info["config"]
    model = create_model(config["model"], **config.get("model_args", {}))
    try:
        model.load_state_dict(load_state(run_dir / MODEL_FILE))
    except (KeyError, ValueError) as exc:
        message = f"{run_dir / MODEL_FILE} does not fit {config['model']}: {exc}"
        raise CheckpointError(message) from exc
    return model, info


def load_optimizer_state(run_dir, optimizer, info):
    """Restore an optimizer saved by save_run (no-op if the run saved none)."""
    if "optimizer" not in info:
        return
    arrays = load_state(Path(run_dir) / OPTIMIZER_FILE)
    optimizer.load_state_dict(_join_optimizer_state(arrays, info["optimizer"]))
