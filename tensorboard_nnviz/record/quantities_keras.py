"""What a Keras optimizer holds for each weight, as host arrays.

The Keras callback records, beside each weight, the quantities
`recorder.quantities` names (docs/architecture.md, "Backends and
distribution"): `m_hat`, `v_rms`, `momentum` from the optimizer's slots
on every backend, and `grad` on the torch backend only (the one backend
where the gradient outlives the train step, as `variable.value.grad`).

Slots are found by variable identity (`optimizer._get_variable_index`),
never by name, through a `LossScaleOptimizer` to its inner optimizer. The
count `t` in the bias corrections is the inner optimizer's `iterations`:
the optimizer steps applied, which under `gradient_accumulation_steps`
counts the real updates only (Keras divides its micro-step counter by the
accumulation steps), and under a loss-scale wrapper leaves out the steps
skipped for overflow.

Conventions, per optimizer (the README, "Gradients and optimizer
state", its Keras part, says the same for users):

- Adam, AdamW (`m`, `v`; AMSGrad: `v_hat`), Nadam: `m_hat` = m / (1 - b1^t),
  `v_rms` = sqrt(v / (1 - b2^t)). Keras's Adam adds eps to sqrt(v) before
  the bias correction ("epsilon hat"), Nadam adds it to sqrt(v_hat), as
  PyTorch does: with the same eps, Adam's floor on `v_rms` is
  eps / sqrt(1 - b2^t). Nadam's step mixes m with the current gradient
  under its momentum schedule; `m_hat` is the plain bias-corrected average.
- Adamax: `m_hat` as Adam; `v_rms` = u, the decayed infinity norm
  max(b2 * u, |g|) as stored: an upper envelope of |g|, not an RMS.
- RMSprop: `v_rms` = sqrt(v) as stored (no bias correction); centered,
  sqrt(v - mean_g^2): what the step divides by, without eps, as the
  PyTorch recorder reads it. `momentum`: its momentum buffer, in parameter
  units (it includes lr), subtracted from the weight.
- SGD: `momentum` = its buffer m = mu * m - lr * g, in parameter units
  (it includes -lr), added to the weight: not PyTorch's gradient units.
- `grad` (torch backend): the gradient the optimizer applied: divided by
  the loss scale, clipped as the optimizer clips; absent when the last
  step was skipped for overflow, under gradient accumulation (the averaged
  gradient is gone once applied), and before the first step.

A quantity an optimizer does not have for a weight (other optimizers, no
step yet, a weight it does not train) is left out.
"""

import keras
import numpy as np

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import structure

# Slot lists by optimizer class: (class, {quantity: (slot list attribute, how)}).
# `how`: "m" bias-corrected by b1, "v" sqrt after b2's correction, "sqrt"
# sqrt as stored, "raw" as stored. First match wins (AdamW is an Adam).
_ADAM = {"m_hat": ("_momentums", "m"), "v_rms": ("_velocities", "v")}
_SLOTS = (
    (keras.optimizers.Nadam, _ADAM),
    (keras.optimizers.Adam, _ADAM),
    (keras.optimizers.Adamax, {"m_hat": ("_m", "m"), "v_rms": ("_u", "raw")}),
    (keras.optimizers.RMSprop, {"v_rms": ("_velocities", "sqrt"),
                                "momentum": ("_momentums", "raw")}),
    (keras.optimizers.SGD, {"momentum": ("momentums", "raw")}),
)


class Reader:
    """The quantities of one snapshot, read from a live optimizer.

    Made once per snapshot on the training thread: the scalars (t, the bias
    corrections, the loss scale) are read once, then `read` copies each
    variable's quantities into host buffers.

    Args:
      optimizer: the model's optimizer (None: nothing is read).
      names: the quantities wanted, names from `format.QUANTITIES`.
      host_view: `host_view(value, variable)` -> numpy array sharing the
        backend's memory where it can (the callback's).
      iterations: `optimizer.iterations` as the caller just read it, or
        None to read it here (each read is a device read: on TensorFlow
        an op). Used only when the optimizer is not a wrapper.
    """

    def __init__(self, optimizer, names, host_view, iterations=None):
        self._host_view = host_view
        self._opt = structure.inner_optimizer(optimizer) if optimizer is not None else None
        self._names = tuple(n for n in fmt.QUANTITIES if n in names)
        self._slots = {}
        self._grad = None  # (divide by, clip) when grads are read
        self._centered = None  # centered RMSprop's mean gradients
        if not self._names or self._opt is None or not getattr(self._opt, "built", False):
            return
        if iterations is None or self._opt is not optimizer:  # a wrapper counts its own
            iterations = np.asarray(keras.ops.convert_to_numpy(self._opt.iterations))
        self._t = int(iterations)
        if self._t < 1:
            return  # no step yet: the slots hold their initial zeros
        self._slots = self._slot_lists()
        if "grad" in self._names:
            self._grad = _grad_scaling(optimizer, self._opt)

    def _slot_lists(self):
        """{quantity: (slot list, multiplier, take sqrt)} for this optimizer."""
        table = next((slots for cls, slots in _SLOTS if isinstance(self._opt, cls)), {})
        found = {}
        for name in self._names:
            if name not in table:
                continue
            attr, how = table[name]
            if how == "v" and getattr(self._opt, "amsgrad", False):
                attr = "_velocity_hats"  # the running max the step divides by
            slots = getattr(self._opt, attr, None)
            if slots:  # SGD/RMSprop without momentum keep an empty list
                found[name] = (slots,) + self._scale(how)
        if "v_rms" in found and getattr(self._opt, "centered", False):
            self._centered = self._opt._average_gradients  # v - mean_g^2, then sqrt
        return found

    def _scale(self, how):
        t = self._t
        if how == "m":
            return 1.0 / (1.0 - _scalar(self._opt.beta_1) ** t), False
        if how == "v":
            return 1.0 / (1.0 - _scalar(self._opt.beta_2) ** t), True
        return 1.0, how == "sqrt"

    def read(self, variable, take):
        """`[(name, host array)]` of `variable`'s quantities, in
        `format.QUANTITIES` order, each copied into `take(name, shape, dtype)`."""
        if not self._slots and self._grad is None:
            return []
        try:
            index = self._opt._get_variable_index(variable)
        except KeyError:  # not trained by this optimizer (frozen, non-trainable)
            return []
        out = []
        for name in self._names:
            if name == "grad":
                value = self._read_grad(variable, take)
            elif name in self._slots:
                value = self._read_slot(name, index, take)
            else:
                continue
            if value is not None:
                out.append((name, value))
        return out

    def read_blocks(self, variable, own):
        """`[(name, blocks)]` of a sharded `variable`'s slot quantities
        (JAX `ModelParallel`: its slots are sharded as it is), in
        `format.QUANTITIES` order: `own(array, name)` copies this process's
        blocks of a slot (a `sharded.Sharded`), scaled here in place block
        by block. Decided from what every process shares (the optimizer,
        its step count), so every process lists the same."""
        if not self._slots:
            return []
        try:
            index = self._opt._get_variable_index(variable)
        except KeyError:
            return []
        out = []
        for name in self._names:
            if name not in self._slots:
                continue  # grad: the torch backend only, never sharded
            slots, mult, sqrt = self._slots[name]
            blocks = own(slots[index].value, name)
            centered = name == "v_rms" and self._centered is not None
            means = ({s.start: s.data for s in own(self._centered[index].value, "v_rms/mean").shards}
                     if centered else {})
            for shard in blocks.shards:
                data = shard.data
                if centered:
                    data -= np.square(means[shard.start])
                    np.maximum(data, 0, out=data)
                _scale_in_place(data, 1.0 if centered else mult, sqrt or centered)
            out.append((name, blocks))
        return out

    def _read_slot(self, name, index, take):
        slots, mult, sqrt = self._slots[name]
        view = self._host_view(slots[index].value, slots[index])
        if name != "v_rms" or self._centered is None:
            return _scaled(view, mult, sqrt, name, take)
        buf = _scaled(view, 1.0, False, name, take)
        mean = self._host_view(self._centered[index].value, self._centered[index])
        buf -= np.square(mean)
        np.maximum(buf, 0, out=buf)  # rounding can leave v a hair under mean^2
        return np.sqrt(buf, out=buf)

    def _read_grad(self, variable, take):
        if self._grad is None:
            return None
        grad = getattr(getattr(variable, "value", None), "grad", None)
        if grad is None:
            return None
        divide, clip = self._grad
        buf = _scaled(_torch_host(grad), 1.0 / divide, False, "grad", take)
        return clip(buf)


def _scaled(view, mult, sqrt, name, take):
    """`view` * mult (then sqrt), in one pass into a pooled float buffer."""
    dtype = view.dtype if view.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    buf = take(name, view.shape, dtype)
    if mult == 1.0:
        np.copyto(buf, view, casting="unsafe")
    else:
        np.multiply(view, mult, out=buf, casting="unsafe")
    if sqrt:
        np.sqrt(buf, out=buf)
    return buf


def _scale_in_place(buf, mult, sqrt):
    if mult != 1.0:
        np.multiply(buf, mult, out=buf, casting="unsafe")
    if sqrt:
        np.sqrt(buf, out=buf)


def _torch_host(tensor):
    """A torch tensor as numpy (a CPU float32/64 tensor without a copy)."""
    import torch

    tensor = tensor.detach()
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # numpy has no bfloat16
    return tensor.cpu().numpy()


def _grad_scaling(optimizer, opt):
    """`(loss scale to divide by, clip)` that turn `.grad` into the
    gradient `opt` applied at its last step, or None where it is gone:
    not the torch backend, gradient accumulation, a step skipped."""
    if keras.backend.backend() != "torch" or opt.gradient_accumulation_steps:
        return None
    divide = 1.0
    if opt is not optimizer:  # a LossScaleOptimizer: its dynamic scale
        divide = _used_loss_scale(optimizer, opt)
        if divide is None:
            return None
    elif opt.loss_scale_factor:
        divide = float(opt.loss_scale_factor)
    return divide, _clipper(opt, divide)


def _used_loss_scale(lso, opt):
    """The dynamic scale the last step's gradients carry, or None when that
    step was skipped (non-finite gradients: Keras halved the scale).

    After a finite step the counter is >= 1, or 0 when that step doubled
    the scale; after a skipped step it is 0 and the gradients are not
    finite, which tells the two apart.
    """
    scale = _scalar(lso.dynamic_scale)
    if int(np.asarray(keras.ops.convert_to_numpy(lso.step_counter))) != 0:
        return scale
    grads = [v.value.grad for v in opt._trainable_variables]
    if not all(bool(g.isfinite().all()) for g in grads if g is not None):
        return None
    return scale / 2.0


def _clipper(opt, divide):
    """The optimizer's own clipping, applied to an unscaled host gradient
    (Keras clips after unscaling, before the update)."""
    if opt.clipnorm and opt.clipnorm > 0:
        limit = float(opt.clipnorm)
        return lambda g: _shrink(g, limit, float(np.linalg.norm(g.ravel())))
    if opt.global_clipnorm and opt.global_clipnorm > 0:
        limit = float(opt.global_clipnorm)
        norm = _global_norm(opt) / divide
        return lambda g: _shrink(g, limit, norm)
    if opt.clipvalue and opt.clipvalue > 0:
        limit = float(opt.clipvalue)
        return lambda g: np.clip(g, -limit, limit, out=g)
    return lambda g: g


def _shrink(g, limit, norm):
    if norm > limit:
        g *= limit / norm
    return g


def _global_norm(opt):
    """The L2 norm of all of `opt`'s gradients together (torch backend)."""
    import torch

    grads = [v.value.grad for v in opt._trainable_variables]
    norms = [torch.linalg.vector_norm(g.detach().double()) for g in grads if g is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _scalar(value):
    """A hyperparameter as a float (Keras allows a callable or a variable)."""
    if callable(value) and not hasattr(value, "value"):
        value = value()
    return float(np.asarray(keras.ops.convert_to_numpy(value)))
