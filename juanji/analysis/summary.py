"""`summary(model, input_size)`: a per-layer table of shapes, parameters, MACs and receptive
fields from one traced forward pass, with totals and the counting conventions spelled out.

    >>> s = summary(model, (1, 28, 28))
    >>> print(s.table())          # text
    >>> s.to_dict()               # JSON-ready
    >>> s.totals["macs"], s.rows[0].output_shape
"""

from dataclasses import dataclass

import numpy as np

from juanji.analysis.counting import flops_from_macs
from juanji.analysis.trace import trace

CONVENTIONS = (
    "One MAC = one multiply-add; FLOPs = 2 x MACs.",
    "Counted: Conv2d (OC*OH*OW*(C/groups)*KH*KW, so grouped and depthwise convs divide by "
    "groups), ConvTranspose2d (C*H*W*(OC/groups)*KH*KW over its input), Conv1d and Linear; "
    "bias adds are not counted.",
    "Pooling, normalization, activations, dropout, reshapes, padding and resampling count 0 "
    "MACs, as in torchvision's published numbers (conv and linear only); additions and "
    "concatenations written in a forward are not counted either.",
    "Layers of unknown type are listed as not counted, never taken as 0.",
    "Parameters shared by several layers are counted once, at their first use; "
    "(n) in the table is the subtotal of a block.",
    "Traced in eval mode. Activations = sum of every leaf layer's output at this batch size "
    "(what a training forward keeps for backward). RF = receptive field in input pixels; "
    "jump = effective stride.",
)


@dataclass
class Row:
    """One module call as shown in the table."""

    name: str
    type: str
    depth: int
    is_leaf: bool
    input_shapes: list
    output_shapes: list
    params: int          # parameters first counted at this call (own, not the children's)
    shared_params: int   # own parameters already counted at an earlier call
    params_total: int    # params of this call and everything it called
    macs: object         # own MACs (leaf layers); None when not countable
    macs_total: int      # MACs of this call and everything it called (countable ones)
    fully_counted: bool  # False when this call or something it called could not be counted
    kind: str            # 'mac', a zero-MAC family ('pooling', ...), 'container', 'unknown'
    rf: object           # ReceptiveField of the output units

    @property
    def output_shape(self):
        return self.output_shapes[0] if self.output_shapes else None

    @property
    def input_shape(self):
        return self.input_shapes[0] if self.input_shapes else None

    def to_dict(self):
        return {
            "name": self.name, "type": self.type, "depth": self.depth, "leaf": self.is_leaf,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "params": self.params, "shared_params": self.shared_params,
            "params_total": self.params_total, "macs": self.macs,
            "macs_total": self.macs_total, "fully_counted": self.fully_counted,
            "kind": self.kind, "receptive_field": self.rf.to_dict(),
        }


class Summary:
    """Rows (one per module call, pre-order) and totals; `.table()` and `.to_dict()`."""

    def __init__(self, model_name, input_size, batch_size, rows, totals, uncounted, uncalled):
        self.model_name = model_name
        self.input_size = tuple(input_size)
        self.batch_size = batch_size
        self.rows = rows
        self.totals = totals
        self.uncounted = uncounted
        self.uncalled = uncalled

    def row(self, name):
        """The first row called `name` (KeyError naming the known layers otherwise)."""
        for row in self.rows:
            if row.name == name:
                return row
        known = ", ".join(r.name for r in self.rows[:12])
        raise KeyError(f"no layer named {name!r} in {self.model_name}; layers include: "
                       f"{known}{', ...' if len(self.rows) > 12 else ''}")

    def to_dict(self):
        return {
            "model": self.model_name, "input_size": list(self.input_size),
            "batch_size": self.batch_size, "rows": [r.to_dict() for r in self.rows],
            "totals": dict(self.totals), "not_counted": list(self.uncounted),
            "not_called": list(self.uncalled), "conventions": list(CONVENTIONS),
        }

    def __str__(self):
        return self.table()

    def table(self, max_depth=None):
        """The text table; rows deeper than max_depth are folded into their block's row."""
        shown = [r for r in self.rows if max_depth is None or r.depth <= max_depth]
        header = ("Layer (type)", "Input shape", "Output shape", "Params", "MACs", "RF", "Jump")
        lines = [_cells(r, folded=max_depth is not None and r.depth == max_depth
                        and not r.is_leaf) for r in shown]
        widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
        right = {3, 4}

        def fmt(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(fmt(header))
        t = self.totals
        item = t["dtype"]
        out = [f"{self.model_name} on input {list((self.batch_size,) + self.input_size)}",
               rule, fmt(header), rule]
        out += [fmt(cells) for cells in lines]
        out.append(rule)
        out.append(f"Params: {t['params']:,} total = {t['trainable_params']:,} trainable + "
                   f"{t['frozen_params']:,} frozen ({human(t['params'])}); "
                   f"buffers: {t['buffers']:,} values")
        partial = " (a lower bound: some layers not counted)" if self.uncounted else ""
        out.append(f"MACs: {t['macs']:,} ({human(t['macs'])}) for a batch of "
                   f"{self.batch_size} = {t['macs_per_sample']:,} per sample{partial}")
        out.append(f"FLOPs = 2 x MACs: {t['flops']:,} ({human(t['flops'])})")
        out.append(f"Memory ({item}): input {mib(t['input_bytes'])}, weights "
                   f"{mib(t['param_bytes'])} (+ buffers {mib(t['buffer_bytes'])}), forward "
                   f"activations {mib(t['activation_bytes'])}; total {mib(t['total_bytes'])}")
        if self.uncounted:
            out.append("Not counted (unknown layer types): " + ", ".join(self.uncounted))
        if self.uncalled:
            out.append("Holding parameters but not called by forward (counted in Params, "
                       "not in MACs): " + ", ".join(self.uncalled))
        out.append(rule)
        out += [f"* {c}" for c in CONVENTIONS]
        return "\n".join(out)


def _shape(shapes):
    if not shapes:
        return "-"
    text = str(list(shapes[0]))
    return text + (f" +{len(shapes) - 1}" if len(shapes) > 1 else "")


def _cells(row, folded=False):
    indent = "  " * row.depth
    if row.is_leaf:
        params = f"{row.params:,}" + (f" (+{row.shared_params:,} shared)"
                                      if row.shared_params else "")
        macs = "?" if row.macs is None else f"{row.macs:,}"
    else:
        params = f"({row.params_total:,})"
        macs = f"({row.macs_total:,}{'' if row.fully_counted else '+?'})"
    jump = row.rf.jump_short()
    name = f"{indent}{row.name or '(model)'} ({row.type}){' ...' if folded else ''}"
    return (name, _shape(row.input_shapes), _shape(row.output_shapes), params, macs,
            row.rf.short(), jump)


def human(n):
    """1234567 -> '1.23 M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def mib(nbytes):
    """Bytes as MiB (2**20) with two decimals, or KiB below 1 MiB."""
    if nbytes < 2 ** 20:
        return f"{nbytes / 2 ** 10:.2f} KiB"
    return f"{nbytes / 2 ** 20:.2f} MiB"


def summary(model, input_size, batch_size=1, dtype=np.float32, name=None):
    """Trace `model` on a (batch_size, *input_size) input and tabulate every layer call.

    input_size is (C, H, W) without the batch axis. The root module gets a row only when it
    has no children (a single layer). Returns a Summary.
    """
    tr = trace(model, input_size, batch_size, dtype)
    calls = tr.calls
    subtree_params = [0] * len(calls)
    subtree_macs = [0] * len(calls)
    counted = [True] * len(calls)
    for call in reversed(calls):  # children come after their parent in pre-order
        i = call.index
        subtree_params[i] += call.params
        subtree_macs[i] += call.macs or 0
        counted[i] = counted[i] and call.macs is not None
        if call.parent >= 0:
            subtree_params[call.parent] += subtree_params[i]
            subtree_macs[call.parent] += subtree_macs[i]
            counted[call.parent] = counted[call.parent] and counted[i]

    keep_root = calls and calls[0].is_leaf
    rows = []
    for call in calls:
        if call.index == 0 and not keep_root:
            continue
        rows.append(Row(
            name=call.key, type=call.type, depth=call.depth - (0 if keep_root else 1),
            is_leaf=call.is_leaf, input_shapes=call.input_shapes,
            output_shapes=call.output_shapes, params=call.params,
            shared_params=call.shared_params, params_total=subtree_params[call.index],
            macs=call.macs, macs_total=subtree_macs[call.index],
            fully_counted=counted[call.index], kind=call.kind, rf=call.rf))

    macs = sum(call.macs or 0 for call in calls)
    activation_bytes = sum(call.output_bytes for call in calls if call.is_leaf)
    totals = {
        "params": tr.params,
        "trainable_params": tr.trainable_params,
        "frozen_params": tr.params - tr.trainable_params,
        "buffers": tr.buffer_elements,
        "macs": macs,
        "macs_per_sample": macs // tr.input_shape[0],
        "flops": flops_from_macs(macs),
        "dtype": np.dtype(dtype).name,
        "input_bytes": tr.input_bytes,
        "param_bytes": tr.param_bytes,
        "buffer_bytes": tr.buffer_bytes,
        "activation_bytes": activation_bytes,
        "total_bytes": tr.input_bytes + tr.param_bytes + tr.buffer_bytes + activation_bytes,
        "output_shapes": [list(s) for s in tr.output_shapes],
    }
    uncounted = [f"{call.key or '(model)'} ({call.type})" for call in calls
                 if call.macs is None]
    return Summary(name or type(model).__name__, tr.input_shape[1:], tr.input_shape[0], rows,
                   totals, uncounted, tr.uncalled)
