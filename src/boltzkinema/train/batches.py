"""Training batches keyed by step, made in the training process or in DataLoader workers.

A step takes ``G = B·W·A`` items (the global batch: per-device batch ``B``, ``W`` processes over
all nodes, ``A`` accumulation steps), the global indices ``s·G .. s·G + G − 1``. Micro-batch ``a``
of rank ``r`` holds the ``B`` of them at slot ``g = a·W + r``. So the items of a step do not
depend on how many processes share it, and any number of workers, a resume at any step (with
as many or other devices) and any process give the same batches; workers only move the cost
(HDF5 reads, crops, features, collate) off the training loop, ahead of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset

from boltzkinema.data.collate import collate
from boltzkinema.data.dataset import TrajectoryDataset
from boltzkinema.errors import ConfigError


def accumulation_steps(global_batch: int | None, batch_size: int, world: int) -> int:
    """Micro-batches per step so that ``batch_size × world × steps = global_batch`` (1 when no
    global batch is set: then the global batch is whatever the processes hold)."""
    if global_batch is None:
        return 1
    per_step = batch_size * world
    if global_batch < per_step or global_batch % per_step:
        raise ConfigError(
            f"train.global_batch {global_batch} is not a multiple of train.batch_size "
            f"{batch_size} x {world} processes (devices x nodes) = {per_step}; set global_batch "
            f"to a multiple of {per_step}, or change batch_size"
        )
    return global_batch // per_step


def micro_slot(micro: int, world: int, rank: int) -> int:
    """Slot ``g`` of micro-batch ``micro`` on ``rank`` within its step (keys its noise too)."""
    return micro * world + rank


def step_indices(
    step: int,
    batch_size: int,
    world: int,
    rank: int,
    n_items: int,
    micro: int = 0,
    accumulation: int = 1,
) -> list[tuple[int, int]]:
    """(epoch, global index) of every item of one micro-batch of one step on one rank."""
    first = (step * accumulation * world + micro_slot(micro, world, rank)) * batch_size
    return [((first + i) // n_items, first + i) for i in range(batch_size)]


class StepBatches(Dataset):
    """Dataset whose item ``s`` is the list of collated micro-batches of training step ``s``."""

    def __init__(
        self,
        items: TrajectoryDataset,
        batch_size: int,
        world: int = 1,
        rank: int = 0,
        accumulation: int = 1,
    ):
        self.items, self.batch_size, self.world, self.rank = items, batch_size, world, rank
        self.accumulation = accumulation

    def __len__(self) -> int:
        return 2**62  # steps are keyed, not counted; the sampler says which to make

    def __getitem__(self, step: int) -> list[dict[str, Any]]:
        n = len(self.items)
        micro = range(self.accumulation)
        keys = [
            step_indices(step, self.batch_size, self.world, self.rank, n, a, self.accumulation)
            for a in micro
        ]
        return [collate([self.items.item(e, i) for e, i in k]) for k in keys]


def batches(
    source: StepBatches, first: int, end: int, workers: int, pin_memory: bool = False
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(step, micro-batches) for steps ``first`` .. ``end - 1``, in order.

    ``workers == 0`` makes each batch when it is asked for (so that a change to the crop, after
    CUDA ran out of memory, applies to the next batch); more use a DataLoader with that many
    worker processes, each opening the shards once.
    """
    if workers == 0:
        for step in range(first, end):
            yield step, source[step]
        return
    source.items.close()  # forked workers open their own HDF5 handles, never the parent's
    loader = DataLoader(
        source,
        batch_size=None,
        sampler=range(first, end),
        num_workers=workers,
        prefetch_factor=4,
        pin_memory=pin_memory,
    )
    yield from zip(range(first, end), loader, strict=True)
