"""A torch module tree: weight tags and the structure document.

**Tag of a weight:** its name in `model.named_parameters()` /
`named_buffers()` with `.` replaced by `/`: `conv1/weight`,
`encoder/layers/0/linear1/weight`, `bn/running_mean`. Wrappers add nothing:
the model passed in is unwrapped first (`DistributedDataParallel` and
`DataParallel` to their `.module`, a `torch.compile` `OptimizedModule` to
its `_orig_mod`), and the path parts such wrappers put inside a model
(`_orig_mod` of a compiled submodule, FSDP's `_fsdp_wrapped_module`,
activation checkpointing's `_checkpoint_wrapped_module`) are dropped. A
tensor reached twice (tied weights, a shared module) keeps its first name,
as `named_parameters()` does.

**What is recorded:** every floating-point parameter and buffer, trainable
or not (BatchNorm's running statistics too). Integer and bool buffers
(`num_batches_tracked`, index tables, masks) are counters and lookup tables,
not weights: they are not recorded, and the structure lists them with their
tag so the layer list shows them as not recorded. Lazy parameters not yet
materialised are recorded from the first snapshot after they are.

**Structure document** (the same as Keras's, `GET /structure`): every
module of `named_modules()` in order, below the root, with its path, class
name, parameter count (parameters only, as torch counts them), `trainable`
(whether any of its parameters requires grad), `inbound` and its own
weights with a per-weight `trainable` (`requires_grad`; buffers never).
`model.optimizer` names the optimizer whose steps are recorded (`watch`'s,
the trainer's first) and its `eps` (`optimizer_summary`).
`inbound` comes from `torch.fx` symbolic tracing when the model traces: the
modules whose outputs feed each module call (through functions such as
`torch.flatten` or `+`). fx treats torch's own modules (Linear, LSTM,
TransformerEncoderLayer, ...) as leaves, so only those calls get edges;
containers and untraceable models (data-dependent control flow) have none,
and the nesting of the module tree remains. Tracing runs `forward` once on
symbolic values when the structure is written; a model with forward hooks
(FSDP2's, a lazy module's, another tool's) is not traced, as the hooks
would run on symbolic values too.
"""

import collections
import warnings

import torch

from tensorboard_nnviz.core import layout_torch
from tensorboard_nnviz.record import structure

# Path parts of wrappers that hold the real module as an attribute.
WRAPPER_PARTS = frozenset({"_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"})

# One tensor of the model, as the recorder sees it: `tensor` the parameter
# or buffer itself, `layer` the owning module's path ("" for the root),
# `layer_class` its `layout_torch.ModuleClass`, `dtype` torch's dtype name,
# `recorded` whether snapshots hold it, `trainable` its requires_grad.
Entry = collections.namedtuple(
    "Entry", "tag tensor shape layer layer_class dtype recorded trainable")


def unwrap(model):
    """The user's model inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def is_sharded(tensor):
    """A DTensor (FSDP2's `fully_shard`, tensor parallelism): each rank holds
    blocks of it (record/sharded.py measures them where they lie)."""
    return callable(getattr(tensor, "full_tensor", None))


def has_fsdp1(model):
    """Whether FullyShardedDataParallel (FSDP1) wraps the model or a part."""
    return any(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules())


def class_name(module):
    """The module's class name, past classes torch.distributed makes up
    (FSDP2 turns a `Linear` into an `FSDPLinear`)."""
    for cls in type(module).__mro__:
        if not cls.__module__.startswith("torch.distributed"):
            return cls.__name__
    return type(module).__name__


def tag_of(name):
    """`encoder.layers.0._orig_mod.weight` → `encoder/layers/0/weight`."""
    return "/".join(p for p in name.split(".") if p and p not in WRAPPER_PARTS)


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _is_wrapper(module):
    return type(module).__name__ == "OptimizedModule" and hasattr(module, "_orig_mod")


def modules(root):
    """`(path, module)` of every module below `root`, in order, wrappers skipped."""
    seen = set()
    for name, module in root.named_modules():
        path = tag_of(name)
        if not name or _is_wrapper(module) or path in seen:
            continue
        seen.add(path)
        yield path, module


def is_lazy(tensor):
    """A lazy module's parameter before its first forward (no shape yet)."""
    return isinstance(tensor, torch.nn.parameter.UninitializedTensorMixin)


def _options(module, parent_heads):
    """Constructor arguments the layout needs (layout_torch.ModuleClass)."""
    return {
        "num_heads": getattr(module, "num_heads", None) if isinstance(
            module, torch.nn.MultiheadAttention) else parent_heads.get(id(module)),
        "groups": getattr(module, "groups", None) if isinstance(
            module, torch.nn.modules.conv._ConvNd) else None,
    }


def entries(root):
    """Every parameter and buffer of `root` (unwrapped), module by module.

    Returns a list of `Entry`, in module order (each module's parameters,
    then its buffers), each tensor once under its first name.
    """
    out = []
    seen = set()
    # An attention layer's out_proj is a Linear whose input is the heads.
    parent_heads = {id(m.out_proj): m.num_heads for m in root.modules()
                    if isinstance(m, torch.nn.MultiheadAttention)}
    for path, module in [("", root)] + list(modules(root)):
        cls = None
        owned = [(n, t, True) for n, t in module.named_parameters(recurse=False)]
        owned += [(n, t, False) for n, t in module.named_buffers(recurse=False)]
        for name, tensor, is_param in owned:
            if tensor is None or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if cls is None:
                cls = layout_torch.module_class(module, **_options(module, parent_heads))
            lazy = is_lazy(tensor)
            out.append(Entry(
                tag=path + "/" + name if path else name,
                tensor=tensor,
                shape=() if lazy else tuple(tensor.shape),
                layer=path,
                layer_class=cls,
                dtype=dtype_name(tensor.dtype),
                recorded=not lazy and tensor.is_floating_point(),
                trainable=bool(is_param and tensor.requires_grad),
            ))
    return out


def signature(items):
    """Changes when a tensor is added, removed, replaced or reshaped."""
    return tuple((e.tag, id(e.tensor), e.shape) for e in items)


def _params(module):
    return sum(p.numel() for p in module.parameters() if not is_lazy(p))


def _has_forward_hooks(root):
    """Whether calling a module runs hooks: fx calls them with symbolic
    values (FSDP2's hooks would then fail its first real forward; a lazy
    module's would initialise it from symbols)."""
    hooks = torch.nn.modules.module
    if hooks._global_forward_hooks or hooks._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in root.modules())


def fx_inbound(root):
    """`{module path: [paths of the modules feeding it]}` from `torch.fx`
    symbolic tracing, or `{}` when the model does not trace or holds
    forward hooks (FSDP2, lazy modules, other tools'), which tracing would
    run on symbolic values."""
    if _has_forward_hooks(root):
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = torch.fx.symbolic_trace(root).graph
    except Exception:  # data-dependent control flow, unsupported ops, ...
        return {}
    feeders = {}  # node → module paths whose outputs reach it through functions
    inbound = {}
    for node in graph.nodes:
        sources = []
        for arg in node.all_input_nodes:
            if arg.op == "call_module":
                sources.append(tag_of(arg.target))
            else:
                sources.extend(feeders.get(arg, ()))
        sources = list(dict.fromkeys(sources))
        if node.op == "call_module":
            path = tag_of(node.target)
            known = inbound.setdefault(path, [])
            known.extend(s for s in sources if s != path and s not in known)
        else:
            feeders[node] = sources
    return inbound


def optimizer_summary(optimizers):
    """`{"class", "epsilon"}` of the first of `optimizers` (the real ones,
    unwrapped), as Keras's (structure.optimizer_summary): `epsilon` from
    its first parameter group's `eps`, None where it has none (SGD) or
    not one number (Adafactor's pair). None without an optimizer."""
    if not optimizers:
        return None
    optimizer = optimizers[0]
    groups = getattr(optimizer, "param_groups", None) or [{}]
    return {"class": type(optimizer).__name__,
            "epsilon": structure.positive_number(groups[0].get("eps"))}


def build_structure(root, items, inbound=None, optimizers=()):
    """The structure document of `root` (unwrapped) and its `entries`;
    `optimizers`: those whose steps are recorded (`optimizer_summary`)."""
    inbound = inbound or {}
    summary = optimizer_summary(optimizers)
    by_layer = collections.defaultdict(list)
    for e in items:
        by_layer[e.layer].append(e)
    layers = []
    for path, module in modules(root):
        layers.append({
            "path": path,
            "class": class_name(module),
            "params": _params(module),
            "trainable": any(p.requires_grad for p in module.parameters()),
            "inbound": inbound.get(path, []),
            "output_shape": None,
            "weights": [
                {
                    "name": e.tag.rsplit("/", 1)[-1],
                    "tag": e.tag,
                    "shape": list(e.shape),
                    "dtype": e.dtype,
                    "trainable": e.trainable,
                }
                for e in by_layer.get(path, [])
            ],
        })
    return {
        "model": {
            "name": class_name(root),
            "class": class_name(root),
            "framework": "torch",
            "params": _params(root),
            "trainable_params": sum(p.numel() for p in root.parameters()
                                    if p.requires_grad and not is_lazy(p)),
            **({"optimizer": summary} if summary else {}),
        },
        "layers": layers,
    }
