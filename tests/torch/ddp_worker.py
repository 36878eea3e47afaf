"""One process of the DDP test (test_ddp.py), or the single-process reference.

    python ddp_worker.py single OUT
    python ddp_worker.py ddp|fsdp OUT RANK WORLD PORT

Trains the same small CNN on the same 8 samples for STEPS SGD steps with
`watch(..., snapshot_freq=2)`: alone on all 8, or as one of WORLD ranks
(gloo, 127.0.0.1) on its own 8 / WORLD, under DistributedDataParallel or
FSDP2 (`fully_shard` of each layer with weights, then of the model). Every process saves the weights it
holds after each step to OUT/truth_<name>.npz; the event files go to
OUT/run (the same directory for every rank: only rank 0 may write there).
"""

import os
import sys

import torch
from torch import nn

import torch_models
from tensorboard_nnviz.torch import watch

STEPS = 6
SAMPLES = 8


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(SAMPLES, 1, 6, 6, generator=g), torch.randint(0, 3, (SAMPLES,), generator=g)


def train(net, x, y, out_dir, name):
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    plain = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    truth = {}

    def keep(step):
        truth[step] = {}
        for k, v in plain.state_dict().items():
            v = v.full_tensor() if hasattr(v, "full_tensor") else v  # FSDP2: every rank gathers
            truth[step][k.replace(".", "/")] = v.detach().numpy().copy()

    keep(0)
    with watch(net, os.path.join(out_dir, "run"), optimizer=opt, snapshot_freq=2):
        for step in range(1, STEPS + 1):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            keep(step)
    torch_models.save_steps(os.path.join(out_dir, "truth_%s.npz" % name), truth)


def main(argv):
    mode, out_dir = argv[0], argv[1]
    x, y = data()
    if mode == "single":
        train(model(), x, y, out_dir, "single")
        return
    rank, world, port = int(argv[2]), int(argv[3]), argv[4]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        shard = slice(rank * SAMPLES // world, (rank + 1) * SAMPLES // world)
        if mode == "ddp":
            net = nn.parallel.DistributedDataParallel(model())
        else:
            from torch.distributed.fsdp import fully_shard

            net = model()
            for layer in (net[0], net[3]):
                fully_shard(layer)
            fully_shard(net)
        train(net, x[shard], y[shard], out_dir, "rank%d" % rank)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
