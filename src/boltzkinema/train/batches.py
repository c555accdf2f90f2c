"""Training batches keyed by step, made in the training process or in DataLoader workers.

A batch is a pure function of (seed, step, rank): the items of step ``s`` on rank ``r`` are the
global indices ``s·B·W + r·B + i``. So any number of workers, a resume at any step and any
process give the same batches, and workers only move the cost (HDF5 reads, crops, features,
collate) off the training loop, ahead of it (``prefetch_factor`` batches per worker).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset

from boltzkinema.data.collate import collate
from boltzkinema.data.dataset import TrajectoryDataset


def step_indices(
    step: int, batch_size: int, world: int, rank: int, n_items: int
) -> list[tuple[int, int]]:
    """(epoch, global index) of every item of one step on one rank."""
    first = step * batch_size * world + rank * batch_size
    return [((first + i) // n_items, first + i) for i in range(batch_size)]


class StepBatches(Dataset):
    """Dataset whose item ``s`` is the collated batch of training step ``s``."""

    def __init__(self, items: TrajectoryDataset, batch_size: int, world: int = 1, rank: int = 0):
        self.items, self.batch_size, self.world, self.rank = items, batch_size, world, rank

    def __len__(self) -> int:
        return 2**62  # steps are keyed, not counted; the sampler says which to make

    def __getitem__(self, step: int) -> dict[str, Any]:
        keys = step_indices(step, self.batch_size, self.world, self.rank, len(self.items))
        return collate([self.items.item(e, i) for e, i in keys])


def batches(
    source: StepBatches, first: int, end: int, workers: int, pin_memory: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(step, batch) for steps ``first`` .. ``end - 1``, in order.

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
