"""Runs of elementwise arithmetic in an imported graph, computed in one pass over memory.

Exporters spell out in nodes what a framework computes in one op. Paddle2ONNX writes each
hardswish of PP-OCRv4's detector as Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6), with a
learnable scale and shift (Mul, Add) on both sides: eight nodes, eight passes over a feature
map that does not fit in cache, after every conv. `fuse_chains` groups such nodes into one
`ChainStep`: the Add, Sub, Mul, Div and Clip nodes whose operands are one value from outside
the group (its root), values of the group, and float constants of one element; the group
must hand exactly one value to the rest of the graph.

A ChainStep computes that value as one compiled loop (`ops.compiled.program_kernel`) that does
each node's float operation in the node's order and dtype: the same bits as the nodes. It does
so when numba is installed, the root is a float32 or float64 Tensor, no gradient will be
needed from it and no tracer watches (`juanji.onnx.export`, `fuse_activations`); otherwise it
runs the nodes one by one, as they were loaded, so autograd and the tracers see every op.
"""

import numpy as np

from juanji import function, grad_mode
from juanji.onnx.handlers.base import Node
from juanji.ops import compiled
from juanji.ops.compiled import program_kernel
from juanji.ops.kernels import elementwise_blocks
from juanji.tensor import Tensor

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def fuse_chains(steps, constants, output_names):
    """`steps` [(Node, step)] in graph order, with each group of two or more chainable nodes
    replaced by one (Node, ChainStep) at the position of its first node (its nodes read only
    the root and each other, so all of them can run there)."""
    groups, owner = [], {}  # owner: value name -> the group that computes it
    for index, (node, _) in enumerate(steps):
        operation = _operation(node, constants)
        if operation is None:
            continue
        values = {ref for kind, ref in operation[1] if kind == "value"}
        joined = {owner[name] for name in values if name in owner}
        outside = {name for name in values if name not in owner}
        if len(joined) == 1 and outside <= {next(iter(joined)).root}:
            group = next(iter(joined))
        elif not joined and len(outside) == 1:
            group = _Group(next(iter(outside)))
            groups.append(group)
        else:
            continue
        group.members.append((index, operation))
        owner[node.outputs[0]] = group
    readers = {}  # value name -> indices of the steps that read it
    for index, (node, _) in enumerate(steps):
        for name in node.inputs:
            readers.setdefault(name, set()).add(index)
    chains = {}  # index of the first node -> (Node, ChainStep); other members are dropped
    for group in groups:
        made = _chain(group, steps, constants, readers, output_names)
        if made is not None:
            chains[group.members[0][0]] = made
    members = {index for group in groups for index, _ in group.members
               if group.members[0][0] in chains}
    return [chains.get(index, pair) for index, pair in enumerate(steps)
            if index in chains or index not in members]


class _Group:
    """Nodes joined into one chain: the value from outside they read, and (index, operation)
    for each node in graph order."""

    def __init__(self, root):
        self.root, self.members = root, []


def _operation(node, constants):
    """(op, [(kind, ref)]) for a chainable node: kind "value" with a value name, or "const"
    with a float array of one element; None for any other node."""
    def ref(name):
        if name in constants:
            value = constants[name]
            if value.dtype.kind != "f" or value.size != 1:
                return None
            return "const", value
        return "value", name

    if len(node.outputs) != 1 or not node.outputs[0]:
        return None
    if node.op_type in _BINARY and len(node.inputs) == 2:
        refs = [ref(name) for name in node.inputs]
        op = _BINARY[node.op_type]
    elif node.op_type == "Clip" and node.inputs[0] not in constants:
        bounds = _clip_bounds(node, constants)
        if bounds is None:
            return None
        refs = [ref(node.inputs[0])] + [("const", np.array(b, np.float64)) for b in bounds]
        op = "clip"
    else:
        return None
    if None in refs or all(kind == "const" for kind, _ in refs):
        return None
    return op, refs


def _clip_bounds(node, constants):
    """Clip's (low, high) as Python floats (-inf, inf where absent), as the Clip handler reads
    them; None when a bound is computed at run time or NaN (np.clip then gives NaN)."""
    if node.opset < 11:
        bounds = [node.attr("min"), node.attr("max")]
    else:
        names = (node.inputs[1:] + ["", ""])[:2]
        if any(name and (name not in constants or constants[name].size != 1) for name in names):
            return None
        bounds = [constants[name].item() if name else None for name in names]
    low = -np.inf if bounds[0] is None else float(bounds[0])
    high = np.inf if bounds[1] is None else float(bounds[1])
    return None if np.isnan(low) or np.isnan(high) else (low, high)


def _chain(group, steps, constants, readers, output_names):
    """(Node, ChainStep) for a group, or None when it has one node or hands more than one
    value to the rest of the graph (`readers`: value name -> indices of the steps reading it)."""
    members = group.members
    made = {steps[index][0].outputs[0] for index, _ in members}
    inside = {index for index, _ in members}
    handed = {name for name in made if readers.get(name, set()) - inside}
    handed |= made & set(output_names)
    if len(members) < 2 or len(handed) != 1:
        return None
    result = handed.pop()
    program, consts, position = [], [], {}
    for index, (op, refs) in members:
        operands = []
        for kind, ref in refs:
            if kind == "const":
                operands.append(("c", len(consts)))
                consts.append(ref)
            else:
                operands.append(("x",) if ref == group.root else ("v", position[ref]))
        position[steps[index][0].outputs[0]] = len(program)
        program.append((op, *operands))
    program = tuple(program[: position[result] + 1])  # what follows the result is dead
    nodes = [steps[index] for index, _ in members]
    first = nodes[0][0]
    node = Node("ElementwiseChain", f"{first.name} (+{len(nodes) - 1} elementwise nodes)",
                [group.root], [result], {}, first.opset)
    needed = {name: constants[name] for sub, _ in nodes for name in sub.inputs
              if name in constants}
    return node, ChainStep(group.root, result, program, consts, nodes, needed)


class ChainStep:
    """One step for a group of elementwise nodes; see the module's docstring."""

    def __init__(self, root, result, program, constants, nodes, node_constants):
        self.root, self.result, self.program = root, result, program
        self.constants = constants  # arrays of one element, in the program's order
        self.ndim = max(c.ndim for c in constants) if constants else 0
        self.nodes = nodes  # [(Node, step)] as loaded: the reference and the fallback
        self.node_constants = node_constants

    def __call__(self, root):
        kernel = program_kernel(self.program)
        fast = (function._tracer is None and isinstance(root, Tensor)
                and compiled.runs_on(kernel, root.data) and root.ndim >= self.ndim
                and not (root.requires_grad and grad_mode.is_enabled()))
        if fast:
            x = root.data
            constants = np.array([c.reshape(()) for c in self.constants], dtype=x.dtype)
            out = np.empty_like(x)
            if elementwise_blocks(lambda x, out: kernel(x, out, constants), x, out,
                                  flat_only=True):
                return Tensor(out)
        return self.run_nodes(root)

    def run_nodes(self, root):
        """The group's nodes one by one, as the graph runs them without fusion."""
        values = dict(self.node_constants)
        values[self.root] = root
        for node, step in self.nodes:
            try:
                out = step(*[values[name] if name else None for name in node.inputs])
            except (ValueError, TypeError, IndexError) as error:
                raise type(error)(f"node {node.name!r} ({node.op_type}): {error}") from error
            values[node.outputs[0]] = out
        return values[self.result]
