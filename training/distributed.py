"""Data-parallel training under torchrun: gloo on CPU, nccl on GPU; gradients averaged across ranks at
each optimiser step (DistEnv.average_gradients); rank 0 writes checkpoints and logs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    local_world: int = 1  # ranks on this node (torchrun's LOCAL_WORLD_SIZE)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistEnv:
        """Read torchrun's variables; start the process group once when WORLD_SIZE > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        if not tdist.is_initialized():
            tdist.init_process_group("nccl" if cuda else "gloo")
        device = torch.device("cuda", local) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        return cls(rank, world, local, device, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))

    @contextlib.contextmanager
    def main_rank_borrows_threads(self) -> Iterator[None]:
        """On rank 0 of a CPU run, use the threads of every rank on its node for work only rank 0 does (a
        quick evaluation): the others meanwhile wait in their next collective, their cores idle."""
        if not (self.enabled and self.is_main and self.local_world > 1 and self.device.type == "cpu"):
            yield
            return
        own = torch.get_num_threads()
        torch.set_num_threads(own * self.local_world)
        try:
            yield
        finally:
            torch.set_num_threads(own)

    def close(self, wait: bool = True) -> None:
        """Tear the process group down; `wait` first for every rank (not on an error path, where a
        rank may never arrive).

        Exiting with the group alive lets gloo's background threads be destroyed mid-flight
        ("terminate called without an active exception", SIGABRT on one rank now and then).
        """
        if self.enabled and tdist.is_initialized():
            if wait:
                tdist.barrier()
            tdist.destroy_process_group()

    def share_weights(self, module: nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (the seeded start already agrees; this makes it so)."""
        for p in module.parameters():
            tdist.broadcast(p.data, src=0)
        self.sync_buffers(module)

    def average_gradients(self, params: list[torch.Tensor]) -> None:
        """Replace each parameter's gradient by its mean over the ranks, in one all-reduce.

        What DDP does, for any autograd a family runs: double backward (R1, gradient penalties), nets
        called in several phases, parameters some steps leave unused (a retired clusterer trunk). As in
        stylegan3's training loop, no DDP wrapper: a rank without a gradient for a parameter counts zero,
        and a parameter no rank has a gradient for keeps None, so the optimiser skips it as in one process.
        """
        if not params:
            return
        grads = [p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params]
        has = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
        flat = torch.cat([*grads, has.to(grads[0].dtype)])
        tdist.all_reduce(flat)
        present = (flat[-len(params) :] > 0).tolist()
        flat = flat[: -len(params)].div_(self.world)
        offset = 0
        for p, here in zip(params, present, strict=True):
            n = p.numel()
            if here:
                mean = flat[offset : offset + n].view(p.shape)
                if p.grad is None:
                    p.grad = mean.clone()
                else:
                    p.grad.copy_(mean)
            offset += n

    def sync_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm statistics, StyleGAN's w_avg) to every rank.

        Each rank's buffers follow its own batches, so after the last step they differ; rank 0's are the
        ones its checkpoint records.
        """
        for b in module.buffers():
            tdist.broadcast(b, src=0)

    def rank0_says(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank (the flag itself in a single process): a decision that each
        rank's own clock could take at a different step (the time budget) is taken once, so no rank
        steps on into a collective the others have left."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        tdist.broadcast(t, src=0)
        return bool(t.item())

    def gather_objects(self, obj) -> list:
        """Every rank's `obj` (picklable), in rank order, on every rank; a collective call."""
        out = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def gather_floats(self, values: list[float]) -> list[list[float]]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        out = [torch.zeros_like(t) for _ in range(self.world)]
        tdist.all_gather(out, t)
        return [o.cpu().tolist() for o in out]


def param_checksum(module: nn.Module) -> float:
    """A float64 fingerprint of all parameters and buffers (equal across ranks iff weights agree)."""
    total = 0.0
    for i, t in enumerate(list(module.parameters()) + list(module.buffers())):
        if t.is_floating_point():
            w = torch.arange(t.numel(), dtype=torch.float64, device=t.device).remainder_(97).add_(i + 1)
            total += float((t.detach().double().flatten() * w).sum())
    return total


def mean_across_ranks(values: list[float]) -> list[float]:
    """The values averaged over the ranks (unchanged in a single process), so every rank's copy of a
    family's controller state (BEGAN's k_t, the InfoGAN clusterer's head losses) agrees."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64)
    tdist.all_reduce(t)
    return (t / tdist.get_world_size()).tolist()
