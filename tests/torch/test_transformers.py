"""`tensorboard_nnviz.transformers.NNVizCallback` in a real Hugging Face
`Trainer` on CPU: tiny GPT-2 and BERT models built from configs (nothing
downloaded), snapshots checked against `named_parameters()` kept by a
second callback, the Trainer's own TensorBoard scalars in the same run,
served by a real `tensorboard` on both ingesters."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: nothing downloads

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging  # noqa: E402

import torch_models as tm  # noqa: E402
from bad_arguments import assert_refused_when_made  # noqa: E402
from runs import read_run, reference_frame, steps_of  # noqa: E402
from tb_server import TensorBoardServer  # noqa: E402

from tensorboard_nnviz.transformers import NNVizCallback  # noqa: E402

hf_logging.set_verbosity_error()  # the tiny configs' token ids warn

VOCAB, LENGTH, SAMPLES = 50, 8, 16


def gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=VOCAB,
                                      n_positions=LENGTH, bos_token_id=0, eos_token_id=0))


def bert():
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=32, vocab_size=VOCAB, pad_token_id=0,
                                      max_position_embeddings=LENGTH))


MODELS = {"gpt2": gpt2, "bert": bert}
TIED = {"gpt2": ("transformer/wte/weight", "lm_head/weight"),
        "bert": ("bert/embeddings/word_embeddings/weight", "cls/predictions/decoder/weight")}


class Tokens(torch.utils.data.Dataset):
    """Fixed random token ids; every other label masked out (-100)."""

    def __len__(self):
        return SAMPLES

    def __getitem__(self, i):
        ids = torch.randint(1, VOCAB, (LENGTH,), generator=torch.Generator().manual_seed(i))
        labels = ids.clone()
        labels[::2] = -100
        return {"input_ids": ids, "labels": labels}


class Truth(TrainerCallback):
    """`named_parameters()` and the floating-point `named_buffers()` (GPT-2's
    `masked_bias` in transformers 4.x) at every `global_step` reached."""

    def __init__(self):
        self.weights = {}

    def _keep(self, state, model):
        tensors = list(model.named_parameters())
        tensors += [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]
        self.weights[state.global_step] = {n.replace(".", "/"): t.detach().numpy().copy()
                                           for n, t in tensors}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._keep(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._keep(state, model)


def train(model, output_dir, nnviz, batch=4, epochs=2, **kwargs):
    """Trains `model` with `nnviz` (then `Truth`); returns the truth."""
    truth = Truth()
    args = TrainingArguments(str(output_dir), per_device_train_batch_size=batch,
                             num_train_epochs=epochs, learning_rate=0.01, save_strategy="no",
                             use_cpu=True, disable_tqdm=True, seed=0, **kwargs)
    Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[nnviz, truth]).train()
    return truth.weights


def run_dir(output_dir):
    """The Trainer's TensorBoard run: output_dir/runs/<time>_<host>."""
    runs = os.listdir(os.path.join(output_dir, "runs"))
    assert len(runs) == 1, runs
    return os.path.join(output_dir, "runs", runs[0])


def assert_snapshots_are(truth, log_dir, steps):
    run = read_run(log_dir)
    assert sorted(run["frames"]) == sorted(truth[0]), "every named tensor, once"
    for tag, frames in run["frames"].items():
        assert sorted(frames) == steps, tag
        layout = run["content"][tag]["layout"]
        for step, frame in frames.items():
            expected = reference_frame(truth[step][tag], layout).astype(np.float32)
            np.testing.assert_array_equal(frame, expected, err_msg="%s at %d" % (tag, step))
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both models trained 2 epochs of 4 steps, a snapshot every 2 steps,
    with the Trainer's TensorBoard logging on."""
    root = tmp_path_factory.mktemp("hf")
    truth = {name: train(build(), root / name, NNVizCallback(snapshot_freq=2),
                         report_to="tensorboard", logging_steps=1)
             for name, build in MODELS.items()}
    return root, truth


@pytest.mark.parametrize("name", sorted(MODELS))
def test_snapshots_equal_named_parameters_at_global_steps(trained, name):
    root, truth = trained
    run = assert_snapshots_are(truth[name], run_dir(root / name), [0, 2, 4, 6, 8])
    first, tied = TIED[name]
    assert first in run["frames"] and tied not in run["frames"]  # tied weights once
    assert not np.array_equal(run["frames"][first][8], run["frames"][first][0])


def test_gpt2s_conv1d_reads_inputs_down_outputs_across(trained):
    """transformers' Conv1D stores its weight as (in, out), unlike Linear."""
    root, truth = trained
    run = read_run(run_dir(root / "gpt2"))
    c_attn = run["content"]["transformer/h/0/attn/c_attn/weight"]
    assert c_attn["shape"] == [16, 48]
    assert (c_attn["layout"]["row_axes"], c_attn["layout"]["col_axes"]) == ([0], [1])
    # Its units are its 48 outputs (q, k, v of 16 each), as for Linear.
    assert c_attn["layout"]["unit_axes"] == [1]
    units = run["units_content"]["transformer/h/0/attn/c_attn/weight"]
    assert units["units"] == 48
    structure = run["structure"][-1][1]
    classes = {layer["path"]: layer["class"] for layer in structure["layers"]}
    assert classes["transformer/h/0/attn/c_attn"] == "Conv1D"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_trainers_own_scalars_are_in_the_same_run(trained, name):
    root, _ = trained
    acc = ea.EventAccumulator(run_dir(root / name))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 9))


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, trained):
    with TensorBoardServer(trained[0], load_fast=request.param) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) == 2)
        yield server


def test_both_ingesters_serve_the_snapshots_beside_the_trainers_scalars(tb, trained):
    root, truth = trained
    runs = {os.path.relpath(run_dir(root / name), root): name for name in MODELS}
    assert {r["run"]: r["steps"] for r in tb.get_json("runs")["runs"]} == {
        run: [0, 2, 4, 6, 8] for run in runs}
    scalars = tb.get_json("/data/plugin/scalars/tags")
    for run, name in runs.items():
        assert "train/loss" in scalars[run]
        tensors = {t["tag"]: t for t in tb.get_json("tags", {"run": run})["tensors"]}
        assert sorted(tensors) == sorted(truth[name][0])
        tag = TIED[name][0]
        t = tensors[tag]
        r = tb.get("frame", {"run": run, "tag": tag, "step": 8})
        assert r.status == 200
        frame = np.frombuffer(r.body, "<f4").reshape(t["rows"], t["cols"])
        np.testing.assert_array_equal(frame, reference_frame(truth[name][8][tag], t["layout"]))


def test_gradient_accumulation_records_optimizer_steps(tmp_path):
    """Batches of 2, accumulating 2: 8 micro-batches and 4 optimizer steps
    an epoch. The steps recorded are the 8 optimizer steps of 2 epochs,
    each snapshot the weights after it (an explicit log_dir)."""
    truth = train(gpt2(), tmp_path / "out", NNVizCallback(tmp_path / "run", snapshot_freq=1),
                  batch=2, gradient_accumulation_steps=2, report_to="none")
    assert sorted(truth) == list(range(9))
    assert_snapshots_are(truth, tmp_path / "run", list(range(9)))


def point_tensorboard_at(path, monkeypatch):
    """Sets where the Trainer's TensorBoard logging writes, as the installed
    transformers reads it: `args.logging_dir` (4.x), $TENSORBOARD_LOGGING_DIR
    (5). Returns the TrainingArguments to add."""
    if "logging_dir" in TrainingArguments.__dataclass_fields__:
        return {"logging_dir": str(path)}
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(path))
    return {}


def test_without_the_tensorboard_callback_the_same_directory_rule(tmp_path, monkeypatch):
    """report_to="none": the run goes where the Trainer's TensorBoard
    logging would write (else output_dir/runs/…); the default schedule is
    one snapshot per epoch."""
    where = point_tensorboard_at(tmp_path / "tb", monkeypatch)
    train(bert(), tmp_path / "a", NNVizCallback(), report_to="none", **where)
    assert steps_of(tmp_path / "tb") == [0, 4, 8]
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    train(bert(), tmp_path / "b", NNVizCallback(), report_to="none", epochs=1)
    assert steps_of(run_dir(tmp_path / "b")) == [0, 4]


def test_tensorboard_logging_dir_is_followed_with_the_trainers_scalars(tmp_path, monkeypatch):
    where = point_tensorboard_at(tmp_path / "tb", monkeypatch)
    train(gpt2(), tmp_path / "out", NNVizCallback(snapshot_freq=4), report_to="tensorboard",
          logging_steps=4, **where)
    assert steps_of(tmp_path / "tb") == [0, 4, 8]
    acc = ea.EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [4, 8]
    assert not (tmp_path / "out" / "runs").exists()


def test_a_tensorboard_callback_with_its_own_writer_is_followed(tmp_path):
    """The directory is the one the Trainer's TensorBoard callback writes
    to, read from that callback, not worked out again."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    tb_callback = TensorBoardCallback(SummaryWriter(str(tmp_path / "custom")))
    truth = Truth()
    args = TrainingArguments(str(tmp_path / "out"), per_device_train_batch_size=4,
                             num_train_epochs=1, save_strategy="no", use_cpu=True,
                             disable_tqdm=True, report_to="none", logging_steps=2)
    Trainer(model=gpt2(), args=args, train_dataset=Tokens(),
            callbacks=[tb_callback, NNVizCallback(snapshot_freq=2), truth]).train()
    assert_snapshots_are(truth.weights, tmp_path / "custom", [0, 2, 4])
    acc = ea.EventAccumulator(str(tmp_path / "custom"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4]
    assert not (tmp_path / "out" / "runs").exists()


def test_only_the_world_process_zero_writes(tmp_path):
    """Two real processes (DDP over gloo on 127.0.0.1, as torchrun starts
    them) train one Trainer: the run holds process zero's snapshots, equal
    to both processes' weights (replicas), and one nnviz event file."""
    import socket
    import subprocess
    import sys

    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_ddp_worker.py")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs = [subprocess.Popen([sys.executable, worker, str(tmp_path), str(rank), "2", port],
                              env=dict(os.environ, OMP_NUM_THREADS="1"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "nnviz" not in "".join(outputs), outputs  # no warning of ours
    truth = [tm.load_steps(tmp_path / ("truth_rank%d.npz" % rank)) for rank in range(2)]
    assert sorted(truth[0]) == [0, 1, 2, 3, 4]  # 16 samples, 2 processes, batches of 2
    for step in truth[0]:
        for tag in truth[0][step]:
            np.testing.assert_array_equal(truth[0][step][tag], truth[1][step][tag])
    log_dir = run_dir(tmp_path)
    assert_snapshots_are(truth[0], log_dir, [0, 2, 4])
    ours = [f for f in os.listdir(log_dir) if _has_nnviz(os.path.join(log_dir, f))]
    assert len(ours) == 1, os.listdir(log_dir)


def _has_nnviz(path):
    from tensorboard_nnviz.record import eventfiles

    return any(v.metadata.plugin_data.plugin_name == "nnviz"
               for e in eventfiles.read_file_events(path) for v in e.summary.value)


def test_bad_arguments_are_refused_when_the_callback_is_made(tmp_path):
    assert_refused_when_made(NNVizCallback, "tensorboard_nnviz.transformers.NNVizCallback",
                             tmp_path)


class GradTruth(TrainerCallback):
    """Each parameter's gradient as the optimizer step applied it (after
    NNVizCallback's hook: callbacks run in the order given)."""

    def __init__(self):
        self.grads = {}

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads[state.global_step + 1] = {
            n.replace(".", "/"): p.grad.detach().numpy().astype(np.float64)
            for n, p in model.named_parameters() if p.grad is not None}


def test_gradients_are_the_accumulated_ones_the_step_applied(tmp_path):
    """Accumulating 2 micro-batches: each snapshot's gradient is the one the
    optimizer step applied (before the Trainer zeroes it), every step."""
    grads = GradTruth()
    args = TrainingArguments(str(tmp_path / "out"), per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, num_train_epochs=1,
                             learning_rate=0.01, save_strategy="no", use_cpu=True,
                             disable_tqdm=True, seed=0, report_to="none")
    Trainer(model=gpt2(), args=args, train_dataset=Tokens(),
            callbacks=[NNVizCallback(tmp_path / "run", snapshot_freq=1), grads]).train()
    run = read_run(tmp_path / "run")
    recorded = {k: v for k, v in run["qstats"].items() if k[1] == "grad"}
    assert recorded and {s for by_step in recorded.values() for s in by_step} == {1, 2, 3, 4}
    for (tag, _), by_step in recorded.items():
        for step, got in by_step.items():
            assert got["l2"] == pytest.approx(np.linalg.norm(grads.grads[step][tag]), rel=1e-5,
                                              abs=1e-12), (tag, step)
    assert {q for _, q in run["qstats"]} == {"grad", "v_rms"}
    # The Trainer's optimizer (AdamW, its adam_epsilon) in the structure.
    assert run["structure"][0][1]["model"]["optimizer"] == {"class": "AdamW",
                                                            "epsilon": args.adam_epsilon}
