"""What a torch optimizer sees of each parameter, at its step: the
quantities recorded beside the weights (docs/architecture.md, "Gradients
and optimizer state"; conventions in the README).

Read in the optimizer's step post-hook (or right after the step), so
`p.grad` is the gradient the step applied: unscaled by a GradScaler (which
unscales in place before calling `step`; a fused optimizer is handed the
scale and its kernel writes the unscaled gradients back in place: checked
on CPU by tests/torch/test_gradients.py), all-reduced by DDP, accumulated
over micro-batches. `optimizer.state[p]` already holds this
step's moments.

- `grad`: `p.grad`.
- `m_hat`: Adam and AdamW's `exp_avg / (1 - beta1**t)`.
- `v_rms`: what the step divides by, without eps: Adam and AdamW's
  `sqrt(v / (1 - beta2**t))`, `v` the `max_exp_avg_sq` under amsgrad (that
  is the denominator it uses), else `exp_avg_sq`; RMSprop's
  `sqrt(square_avg)` (centred: `sqrt(square_avg - grad_avg**2)`); Adagrad's
  `sqrt(sum)`. As stored, no bias correction, for the last two.
- `momentum`: SGD's and RMSprop's `momentum_buffer`, in gradient units
  (torch's convention: `buf = momentum * buf + (1 - dampening) * grad`).

Other optimizers give `grad` only (their state's conventions differ:
NAdam's m correction, Adamax's infinity norm), and a parameter without
state (before its first step, frozen) gives what it has.
"""

import logging
import math

import torch

logger = logging.getLogger(__name__)

__all__ = ["Reading", "read"]


class Reading:
    """One quantity of one parameter, to copy to host: `tensor` (the
    optimizer's own, not copied yet), `scale`, a factor the copy is
    multiplied by (a bias correction; 1.0 for none), and `finish`, a
    function applied in place to the host copy (a torch tensor) once it
    has landed and been scaled (a square root), or None.

    The scale is separate from `finish` so that a CPU copy can be scaled
    as it is made (`torch.mul(..., out=)`), one pass over the memory
    instead of a copy and then a multiply in place.
    """

    __slots__ = ("quantity", "tensor", "scale", "finish")

    def __init__(self, quantity, tensor, finish=None, scale=1.0):
        self.quantity, self.tensor, self.finish, self.scale = quantity, tensor, finish, scale


def groups_of(optimizers):
    """{id(parameter): (optimizer, its param group)} over `optimizers`."""
    found = {}
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                found.setdefault(id(p), (opt, group))
    return found


def read(p, wanted, groups):
    """The `Reading`s of parameter `p` among `wanted` (quantity names), in
    their order; none the optimizer lacks for it.

    Args:
      groups: from `groups_of` (the optimizers whose steps are recorded).
    """
    found = groups.get(id(p))
    if found is None:
        return []
    opt, group = found
    state = opt.state.get(p) or {}
    if "step" in state and not _step(state):
        state = {}  # made before any step (Adagrad's accumulator): nothing seen yet
    out = []
    for quantity in wanted:
        reading = _reading(quantity, p, opt, group, state)
        if reading is not None:
            out.append(reading)
    return out


def read_safely(p, wanted, groups):
    """`read`, or nothing for a parameter whose optimizer state we cannot
    read (an optimizer of unexpected conventions): its weight is still
    recorded, and the snapshot is not lost."""
    try:
        return read(p, wanted, groups)
    except Exception:
        logger.warning("nnviz: could not read the optimizer's state of a parameter",
                       exc_info=True)
        return []


def _reading(quantity, p, opt, group, state):
    if quantity == "grad":
        grad = p.grad
        return None if grad is None or grad.is_sparse else Reading(quantity, grad)
    if _is_adam(opt):
        return _adam(quantity, group, state)
    if quantity == "momentum" and isinstance(state.get("momentum_buffer"), torch.Tensor):
        return Reading(quantity, state["momentum_buffer"])
    if quantity == "v_rms" and isinstance(opt, torch.optim.RMSprop) and "square_avg" in state:
        if group.get("centered") and "grad_avg" in state:
            return Reading(quantity, state["square_avg"] - state["grad_avg"] ** 2, _sqrt)
        return Reading(quantity, state["square_avg"], _sqrt)
    if quantity == "v_rms" and isinstance(opt, torch.optim.Adagrad) and "sum" in state:
        return Reading(quantity, state["sum"], _sqrt)
    return None


def _is_adam(opt):
    return isinstance(opt, (torch.optim.Adam, torch.optim.AdamW))


def _adam(quantity, group, state):
    t = _step(state)
    if not t:
        return None
    beta1, beta2 = (float(b) for b in group["betas"])
    if quantity == "m_hat" and "exp_avg" in state:
        return Reading(quantity, state["exp_avg"], scale=1.0 / (1.0 - beta1 ** t))
    if quantity == "v_rms" and "exp_avg_sq" in state:
        v = state["max_exp_avg_sq"] if group.get("amsgrad") and "max_exp_avg_sq" in state \
            else state["exp_avg_sq"]
        return Reading(quantity, v, _sqrt_in_place, scale=1.0 / (1.0 - beta2 ** t))
    return None


def _step(state):
    """The optimizer's step count t of a parameter (0 without one)."""
    step = state.get("step")
    if step is None:
        return 0
    t = float(step)  # a tensor in current torch
    return t if math.isfinite(t) else 0


def _sqrt(host):
    host.clamp_(min=0).sqrt_()


def _sqrt_in_place(host):
    host.sqrt_()  # of a scaled average of squares: never negative


def skipped(optimizer):
    """Whether the step that just ran was skipped for inf/NaN gradients:
    a fused optimizer under a GradScaler runs `step` and skips inside its
    kernel when `found_inf` is set (a non-fused one is never called)."""
    found_inf = getattr(optimizer, "found_inf", None)
    return isinstance(found_inf, torch.Tensor) and float(found_inf) > 0
