"""``gaussianip-human-camera-datamodule``: our camera distributions as a Lightning module."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from threestudio.utils.base import Updateable
from torch.utils.data import DataLoader, Dataset, IterableDataset

from gaussianip.config import parse_config
from gaussianip.data import HumanCameraConfig, HumanCameraSampler, select_views
from gaussianip.threestudio_ext.registry import register


class TrainCameras(IterableDataset, Updateable):
    """Endless training batches; the batch depends on the step (close-ups from step 1200)."""

    def __init__(self, sampler: HumanCameraSampler) -> None:
        self.sampler = sampler
        self.step = 0

    def update_step(self, epoch: int, global_step: int, on_load_weights: bool = False) -> None:
        self.step = global_step

    def __iter__(self):
        while True:
            yield {}

    def collate(self, _: Any) -> dict[str, Any]:
        return self.sampler.sample(self.step)


class FixedCameras(Dataset):
    """A fixed ring of views (validation or test turntable), one view per item."""

    def __init__(self, batch: dict[str, Any]) -> None:
        self.batch = batch
        self.n_views = batch["c2w"].shape[0]

    def __len__(self) -> int:
        return self.n_views

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": index, **select_views(self.batch, [index])}

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        # Views already carry a leading batch axis; keep height/width as ints.
        first = items[0]
        return {
            key: torch.cat([it[key] for it in items])
            if isinstance(first[key], torch.Tensor)
            else (torch.tensor([it[key] for it in items]) if key == "index" else first[key])
            for key in first
        }


@register("gaussianip-human-camera-datamodule")
class HumanCameraDataModule(pl.LightningDataModule):
    """Training cameras of the method, a validation ring and the test turntable."""

    cfg: HumanCameraConfig

    def __init__(self, cfg: dict | None = None) -> None:
        super().__init__()
        self.cfg = parse_config(HumanCameraConfig, cfg, "data")
        self.sampler = HumanCameraSampler(self.cfg)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_dataset = TrainCameras(self.sampler)
        if stage in (None, "fit", "validate"):
            self.val_dataset = FixedCameras(self.sampler.turntable(self.cfg.n_val_views))
        if stage in (None, "test", "predict"):
            self.test_dataset = FixedCameras(self.sampler.turntable(self.cfg.n_test_views))

    def train_dataloader(self) -> DataLoader:
        # num_workers=0 so that update_step is seen by the dataset the loader iterates.
        return DataLoader(
            self.train_dataset,
            batch_size=None,
            num_workers=0,
            collate_fn=self.train_dataset.collate,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=1, collate_fn=FixedCameras.collate)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_dataset, batch_size=1, collate_fn=FixedCameras.collate)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
