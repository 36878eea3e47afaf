"""One process of the Trainer's DDP test (test_transformers.py).

    python hf_ddp_worker.py OUT RANK WORLD PORT

Trains the tiny GPT-2 of test_transformers.py with a Hugging Face `Trainer`
as one of WORLD processes (DDP over gloo on 127.0.0.1, as torchrun would
start it), with `NNVizCallback(snapshot_freq=2)` and the Trainer's
TensorBoard logging, into OUT (the same for every process). Each process
saves its weights at every global step to OUT/truth_rank<RANK>.npz.
"""

import os
import sys

out, rank, world, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=world, LOCAL_WORLD_SIZE=world,
                  MASTER_ADDR="127.0.0.1", MASTER_PORT=port, HF_HUB_OFFLINE="1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

import test_transformers as hf  # noqa: E402
import torch_models  # noqa: E402

from tensorboard_nnviz.transformers import NNVizCallback  # noqa: E402

truth = hf.train(hf.gpt2(), out, NNVizCallback(snapshot_freq=2), batch=2, epochs=1,
                 report_to="tensorboard", logging_steps=1)
torch_models.save_steps(os.path.join(out, "truth_rank%d.npz" % rank), truth)
