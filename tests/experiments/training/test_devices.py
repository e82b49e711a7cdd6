"""The devices and CPUs of a run: one GPU per process without a launcher (never nn.DataParallel, whose batch would
be the GPU count times ``--batch-size``), and the DataLoader workers, by default only for images on a GPU."""

from __future__ import annotations

import pytest
import torch
from conftest import write_images

from hora.experiments.errors import HoraError, HoraWarning
from hora.experiments.training import devices
from hora.experiments.training import train as train_mod
from hora.experiments.training.train_config import TrainConfig


def test_a_process_that_sees_two_gpus_trains_on_one_with_a_notice(monkeypatch, tmp_path):
    from transformers import TrainingArguments

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with 2 visible GPUs, as torch sees it
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, report_to="none")
    assert args.n_gpu == 2 and args.train_batch_size == 16  # what Trainer would train: DataParallel over both
    notice = r"2 GPUs are visible .* trains on cuda:0 only; .*`torchrun --nproc-per-node 2 -m hora train"
    with pytest.warns(HoraWarning, match=notice):
        devices.one_gpu_per_process(args)
    assert args.n_gpu == 1 and args.train_batch_size == 8 and str(args.device) == "cuda:0"


def test_one_gpu_or_none_is_left_as_it_is(tmp_path, recwarn):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, report_to="none",
                             use_cpu=True)
    devices.one_gpu_per_process(args)
    assert args.n_gpu == 0 and not [w for w in recwarn if issubclass(w.category, HoraWarning)]


def test_the_default_workers_decode_images_for_a_gpu_only(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # the run's CPUs (--cpus-per-run, or the cores)
    assert devices.dataloader_workers(3, "text") == 3  # asked for: as asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.dataloader_workers(None, "image") == 0  # CPU only: the cores compute
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.dataloader_workers(None, "text") == 0  # tokenised before training
    assert devices.dataloader_workers(None, "image") == 3  # one CPU left to the training loop
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    assert devices.dataloader_workers(None, "image") == devices.MAX_WORKERS
    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun, 4 processes on this node: each gets a quarter of the CPUs
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert devices.dataloader_workers(None, "image") == 3


def test_dataloader_workers_is_checked():
    with pytest.raises(HoraError, match="--dataloader-workers must be >= 0, got -1"):
        TrainConfig(dataloader_workers=-1)


def test_an_image_run_decodes_in_workers_and_trains_on_one_gpu_of_the_process(hub_cache, tmp_path, monkeypatch):
    """The run's trainer has its arguments checked for one GPU, and its data loaders (training and evaluation)
    use the workers asked for, which decode the images."""
    seen = []
    real = devices.one_gpu_per_process
    monkeypatch.setattr(devices, "one_gpu_per_process", lambda args: seen.append(args) or real(args))
    workers = []
    real_loader = torch.utils.data.DataLoader.__init__

    def record(self, *args, **kwargs):
        workers.append(kwargs.get("num_workers", 0))
        real_loader(self, *args, **kwargs)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", record)
    folder = write_images(tmp_path / "colours")
    cfg = TrainConfig(model="hora-test/tiny-vit", dataset=str(folder), image_column="img", label_column="colour",
                      steps=2, batch_size=8, output=str(tmp_path / "run"), progress=False, dataloader_workers=1)
    m = train_mod.train(cfg)
    assert len(seen) == 1 and seen[0].dataloader_num_workers == 1
    assert len(workers) >= 3 and set(workers) == {1}  # training, validation, test
    assert 0 <= m["accuracy"] <= 1
