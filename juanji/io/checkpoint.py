"""Checkpoints as safetensors (never pickle), committed to run folders as transactions.

A run folder holds:
    run.json               the commit pointer and a readable summary: the run's config, epoch,
                           step, metrics history, and the list of committed checkpoints (newest
                           first, the last two kept) with each file's sha256
    checkpoints/NNNNNN/    one committed checkpoint:
        model.safetensors      the model's state_dict (PyTorch key names)
        optimizer.safetensors  the optimizer's array state, keys "state.<index>.<name>"
        state.json             everything else that continues the run: config, epoch, step,
                               history, optimizer settings/scalars, scheduler state and the
                               trainer's state (counters, partial sums, random generators)
    history.csv, curves.png, filters*.png   views of the history, redrawn after each commit

A checkpoint is written into a hidden temporary folder, every file fsynced, then renamed into
place; run.json is replaced atomically only after that, so a crash at any moment leaves run.json
naming whole checkpoints. On loading, each file is checked against the sha256 that run.json
records; a missing, truncated or altered latest checkpoint is reported in one line and the
previous one is used instead.

Run folders written before checkpoints were transactional (model.safetensors and
optimizer.safetensors beside run.json) still load; they carry no random-generator state.
"""

import hashlib
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load, save

from juanji.io.files import atomic_write_bytes, atomic_write_text, fsync_dir, write_file_synced

MODEL_FILE, OPTIMIZER_FILE, RUN_FILE = "model.safetensors", "optimizer.safetensors", "run.json"
STATE_FILE, CHECKPOINTS_DIR = "state.json", "checkpoints"
FORMAT = 2
KEEP = 2  # committed checkpoints kept: the latest and the one before it
_CHECKPOINT_NAME = re.compile(r"^\d{6}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A checkpoint or run folder that is missing, incomplete or does not match the model."""


# ---- single files -------------------------------------------------------------------------------
def state_bytes(arrays, metadata=None):
    """{name: array} as safetensors bytes (arrays made contiguous)."""
    # ascontiguousarray would turn 0-d arrays (e.g. an optimizer's step) into 1-d ones
    tensors = {k: v if v.flags.c_contiguous else np.ascontiguousarray(v)
               for k, v in arrays.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    return save(tensors, metadata=meta)


def save_state(path, arrays, metadata=None):
    """Write {name: array} to a safetensors file atomically."""
    atomic_write_bytes(path, state_bytes(arrays, metadata))


def load_state(path):
    """Read a safetensors file into {name: numpy array}; clear error if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return load(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None


# ---- optimizer state: arrays to safetensors, the rest to JSON -----------------------------------
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


# ---- writing a checkpoint -----------------------------------------------------------------------
def save_run(run_dir, model, config, optimizer=None, scheduler=None, epoch=0, history=None,
             step=0, trainer_state=None):
    """Commit one checkpoint of a run to `run_dir` (see the module docstring).

    `config` must say how to rebuild the model (`model`, `model_args`); `epoch` counts finished
    epochs and `step` the batches done in the unfinished one. Returns the checkpoint's folder.
    """
    run_dir = Path(run_dir)
    folder = run_dir / CHECKPOINTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    kept = _readable_entries(run_dir)
    name = f"{_next_number(folder, kept):06d}"
    state = {"config": _jsonable(config), "epoch": epoch, "step": step,
             "history": _jsonable(history or [])}
    files = {MODEL_FILE: state_bytes(model.state_dict(), {"format": "juanji"})}
    if optimizer is not None:
        arrays, state["optimizer"] = _split_optimizer_state(optimizer.state_dict())
        files[OPTIMIZER_FILE] = state_bytes(arrays)
    if scheduler is not None:
        saved = {k: v for k, v in scheduler.state_dict().items() if not callable(v)}
        state["scheduler"] = _jsonable(saved)
    if trainer_state is not None:
        state["trainer"] = _jsonable(trainer_state)
    files[STATE_FILE] = (json.dumps(state, indent=1) + "\n").encode("utf-8")

    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for file_name, data in files.items():
        write_file_synced(tmp / file_name, data)
    fsync_dir(tmp)
    os.replace(tmp, folder / name)
    fsync_dir(folder)

    entry = {"dir": f"{CHECKPOINTS_DIR}/{name}", "epoch": epoch, "step": step,
             "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}
    entries = [entry] + kept[:KEEP - 1]
    summary = {"format": FORMAT, "config": state["config"], "epoch": epoch, "step": step,
               "history": state["history"], "checkpoints": entries}
    for key in ("optimizer", "scheduler"):
        if key in state:
            summary[key] = state[key]
    atomic_write_text(run_dir / RUN_FILE, json.dumps(summary, indent=2) + "\n")  # the commit
    _remove_uncommitted(folder, entries)
    return folder / name


def _readable_entries(run_dir):
    """The committed checkpoints listed by an existing run.json (none if there is none)."""
    try:
        info = read_run_info(run_dir)
    except CheckpointError:
        return []
    return list(info.get("checkpoints", []))


def _next_number(folder, entries):
    numbers = [int(p.name) for p in folder.iterdir() if _CHECKPOINT_NAME.match(p.name)]
    numbers += [int(Path(e["dir"]).name) for e in entries]
    return max(numbers, default=0) + 1


def _remove_uncommitted(folder, entries):
    """Delete checkpoint folders that run.json no longer names (older ones, crashed writes)."""
    keep = {Path(e["dir"]).name for e in entries}
    for path in folder.iterdir():
        if path.name not in keep and (_CHECKPOINT_NAME.match(path.name) or
                                      path.name.endswith(".tmp")):
            shutil.rmtree(path, ignore_errors=True)


# ---- reading run.json ---------------------------------------------------------------------------
def read_run_info(run_dir):
    """The parsed and checked run.json of a run folder (a folder only, not a file in it)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise CheckpointError(f"{run_dir} is a file; give the run folder that holds it "
                              f"({run_dir.parent})")
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a juanji run folder: no {RUN_FILE} in it")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    _check_info(info, path)
    return info


def _check_info(info, path):
    """Types and ranges of the run.json fields juanji reads; one error naming the field."""
    def require(ok, field, expected):
        if not ok:
            value = info.get(field) if isinstance(info, dict) else info
            raise CheckpointError(f"{path}: {field} must be {expected}; got {value!r}")

    require(isinstance(info, dict), "the file", "a JSON object")
    config = info.get("config")
    require(isinstance(config, dict), "config", "an object naming the model")
    require(isinstance(config.get("model"), str), "config.model", "a model name")
    require(isinstance(config.get("model_args", {}), dict), "config.model_args", "an object")
    require(_is_count(info.get("epoch", 0)), "epoch", "an integer >= 0")
    require(_is_count(info.get("step", 0)), "step", "an integer >= 0")
    history = info.get("history", [])
    require(isinstance(history, list) and all(isinstance(r, dict) for r in history),
            "history", "a list of per-epoch objects")
    if "checkpoints" not in info:
        return  # a run folder from before transactional checkpoints
    entries = info["checkpoints"]
    require(isinstance(entries, list) and entries and all(_is_entry(e) for e in entries),
            "checkpoints", 'a non-empty list of {"dir", "epoch", "step", "files": {name: sha256}}')
    latest = entries[0]
    if (latest["epoch"], latest["step"]) != (info["epoch"], info["step"]):
        raise CheckpointError(
            f"{path} says epoch {info['epoch']} step {info['step']} but its latest checkpoint "
            f"{latest['dir']} holds epoch {latest['epoch']} step {latest['step']} "
            f"(was run.json edited?)")
    require(len(history) == info["epoch"], "history",
            f"one record per finished epoch ({info['epoch']})")


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_entry(entry):
    return (isinstance(entry, dict) and isinstance(entry.get("dir"), str)
            and re.fullmatch(rf"{CHECKPOINTS_DIR}/\d{{6}}", entry["dir"]) is not None
            and _is_count(entry.get("epoch")) and _is_count(entry.get("step"))
            and isinstance(entry.get("files"), dict) and STATE_FILE in entry["files"]
            and MODEL_FILE in entry["files"]
            and all(isinstance(v, str) and _SHA256.match(v) for v in entry["files"].values()))


# ---- opening a checkpoint -----------------------------------------------------------------------
def open_checkpoint(run_dir, warn=None):
    """The newest whole checkpoint of a run folder: (its folder, its state dict).

    Files are checked against run.json's sha256 sums; a damaged latest checkpoint is reported
    through `warn(line)` (default: stderr) and the previous one is used. The state has the keys
    of state.json (config, epoch, step, history, optimizer, scheduler, trainer).
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if "checkpoints" not in info:
        return run_dir, info  # the old layout: run.json is the state, files beside it
    warn = warn or (lambda line: print(line, file=sys.stderr))
    problems = []
    for entry in info["checkpoints"]:
        folder = run_dir / entry["dir"]
        problem = _verify(folder, entry["files"])
        if problem is None:
            state = json.loads((folder / STATE_FILE).read_text())
            if (state.get("epoch"), state.get("step")) != (entry["epoch"], entry["step"]):
                problem = f"{STATE_FILE} holds another epoch than run.json lists"
            else:
                if problems:
                    warn(f"juanji: {problems[-1]}; using the previous checkpoint {folder} "
                         f"(epoch {entry['epoch']}, step {entry['step']})")
                return folder, state
        problems.append(f"checkpoint {folder} is damaged ({problem})")
    raise CheckpointError(f"{run_dir} has no whole checkpoint: " + "; ".join(problems))


def _verify(folder, files):
    """None if every file in `files` exists with its sha256, else what is wrong."""
    for name, expected in files.items():
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return f"{name} is missing"
        except OSError as exc:
            return f"{name} cannot be read: {exc.strerror}"
        if hashlib.sha256(data).hexdigest() != expected:
            return f"{name} does not match its sha256 in {RUN_FILE}"
    return None


def load_run(run_dir, warn=None):
    """Rebuild the model of a run folder and load its newest whole checkpoint.

    Returns (model, state) where state is the checkpoint's state.json (see open_checkpoint)
    with "checkpoint_dir" added.
    """
    from juanji.models import MODELS, create_model

    folder, state = open_checkpoint(run_dir, warn)
    config = state["config"]
    if config["model"] not in MODELS:
        raise CheckpointError(f"{Path(run_dir) / RUN_FILE} names an unknown model "
                              f"{config['model']!r}")
    try:
        model = create_model(config["model"], **config.get("model_args", {}))
    except TypeError as exc:
        raise CheckpointError(f"{Path(run_dir) / RUN_FILE}: config.model_args do not fit "
                              f"{config['model']}: {exc}") from None
    try:
        model.load_state_dict(load_state(folder / MODEL_FILE))
    except (KeyError, ValueError) as exc:
        message = f"{folder / MODEL_FILE} does not fit {config['model']}: {exc}"
        raise CheckpointError(message) from None
    return model, dict(state, checkpoint_dir=str(folder))


def load_optimizer_state(checkpoint_dir, optimizer, state):
    """Restore an optimizer saved by save_run (no-op if the run saved none). The arrays come
    from `state["optimizer_file"]` (the file's bytes, when another process read it) or the
    checkpoint folder."""
    if "optimizer" not in state:
        return
    path = Path(checkpoint_dir) / OPTIMIZER_FILE
    if "optimizer_file" in state:
        arrays = load(state["optimizer_file"])
    else:
        arrays = load_state(path)
    try:
        optimizer.load_state_dict(_join_optimizer_state(arrays, state["optimizer"]))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} does not fit the optimizer: {exc}") from None


def check_finite_weights(model, where):
    """Raise CheckpointError naming the first state_dict entry holding NaN or infinity."""
    for key, value in model.state_dict().items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise CheckpointError(f"{where}: {key} holds {bad} non-finite values (NaN or inf); "
                                  "these weights cannot be evaluated")
