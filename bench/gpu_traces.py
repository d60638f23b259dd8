"""Record real per-epoch energy traces on an NVIDIA GPU, through the exporter's NVML backend.

    python bench/gpu_traces.py --out bench/traces/h200 [--epochs 30] [--seconds-per-epoch 2]

Needs PyTorch with CUDA and joulecast[exporter] importable (PYTHONPATH may point at an
install of this checkout). Starts ``joulecast-exporter --backend nvml`` on loopback, checks
that it publishes the GPU's power and energy counter, then trains a few small models on
synthetic data with the joulecast client, each epoch a fixed number of steps plus an
evaluation pass, and writes what the exporter recorded at each epoch end:

* ``traces.csv``: ``job_id, epoch, epoch_end_time_s, epoch_energy_j`` (the trace format of
  ``joulecast step evaluate``), energy as the exporter attributed it to the job;
* ``runs.csv``: per job, the exporter's total against NVML's own energy counter over the
  same span (attribution check) and the model, batch size and precision;
* ``metrics.txt``: one /metrics scrape of the real GPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def start_exporter(port: int, state: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "joulecast.exporter",
            "--backend",
            "nvml",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--state.dir",
            state,
            "--no-collector.rapl",
            "--log.level",
            "warning",
        ],
    )
    for _ in range(100):
        try:
            get(f"http://127.0.0.1:{port}/healthz")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the exporter did not start")


def models():
    import torch
    from torch import nn

    def convnet(width: int, depth: int) -> nn.Module:
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 100)]
        return nn.Sequential(*layers)

    def transformer(d: int, layers: int) -> nn.Module:
        class T(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = nn.Embedding(8000, d)
                enc = nn.TransformerEncoderLayer(d, 8, 4 * d, batch_first=True)
                self.enc = nn.TransformerEncoder(enc, layers)
                self.out = nn.Linear(d, 8000)

            def forward(self, x):
                return self.out(self.enc(self.emb(x)))

        return T()

    def images(b: int, size: int):
        return lambda: (
            torch.randn(b, 3, size, size, device="cuda"),
            torch.randint(0, 100, (b,), device="cuda"),
        )

    def tokens(b: int, n: int):
        return lambda: (torch.randint(0, 8000, (b, n), device="cuda"),) * 2

    return [
        # job id, model, batch maker, bf16, frozen warm-up epochs, GFLOPs (rough, for the card)
        ("h200-convnet-w128-b256", convnet(128, 6), images(256, 64), False, 0),
        ("h200-convnet-w256-b128-bf16", convnet(256, 8), images(128, 64), True, 0),
        ("h200-convnet-w192-frozen", convnet(192, 8), images(256, 64), False, 5),
        ("h200-transformer-d512-b64", transformer(512, 6), tokens(64, 256), True, 0),
        ("h200-transformer-d768-b32", transformer(768, 8), tokens(32, 512), True, 0),
        ("h200-convnet-w64-b512-fp32", convnet(64, 10), images(512, 32), False, 0),
    ]


def train(job_id, model, batch, bf16, frozen, url, epochs, seconds, calib_steps=20):
    import torch

    import joulecast

    model = model.cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(train: bool = True) -> float:
        x, y = batch()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            loss = loss_fn(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        if train:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return float(loss.detach())

    # size an epoch: steps that take about `seconds` once warm
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(calib_steps):
        step()
    torch.cuda.synchronize()
    steps = max(5, int(seconds / ((time.perf_counter() - t) / calib_steps)))
    params = list(model.parameters())
    with joulecast.job(job_id, epochs=epochs, url=url, gpus=[0]) as job:
        for epoch in range(1, epochs + 1):
            frozen_now = epoch <= frozen
            for p in params[: len(params) // 2]:
                p.requires_grad_(not frozen_now)  # frozen early layers: shorter epochs
            for _ in range(steps):
                loss = step()
            with torch.no_grad():
                for _ in range(max(1, steps // 10)):
                    val = step(train=False)
            torch.cuda.synchronize()
            job.epoch_end({"loss": loss, "val_loss": val})
    return steps


def train_loader(job_id, width, batch, epochs, url, checkpoint_every=5, workers=4):
    """A run closer to real ones: a DataLoader with CPU-side augmentation in worker
    processes, an evaluation pass, and a checkpoint written every few epochs (stalls)."""
    import tempfile

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import joulecast

    g = torch.Generator().manual_seed(0)
    x = torch.randn(12_000, 3, 48, 48, generator=g)
    y = torch.randint(0, 100, (12_000,), generator=g)

    def augment(batch_list):
        xs = torch.stack([b[0] for b in batch_list])
        if torch.rand(1).item() < 0.5:
            xs = xs.flip(-1)
        xs = xs + 0.05 * torch.randn_like(xs)
        return xs, torch.stack([b[1] for b in batch_list])

    train = DataLoader(
        TensorDataset(x[:10_000], y[:10_000]),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        collate_fn=augment,
        pin_memory=True,
    )
    val = DataLoader(TensorDataset(x[10_000:], y[10_000:]), batch_size=batch, num_workers=2)
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(6):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 100)]
    model = nn.Sequential(*layers).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    ckpt = Path(tempfile.mkdtemp()) / "ckpt.pt"
    with joulecast.job(job_id, epochs=epochs, url=url, gpus=[0]) as job:
        for epoch in range(1, epochs + 1):
            model.train()
            for xb, yb in train:
                xb, yb = xb.cuda(non_blocking=True), yb.cuda(non_blocking=True)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                val_loss = sum(float(loss_fn(model(a.cuda()), b.cuda())) for a, b in val)
            if epoch % checkpoint_every == 0:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, ckpt)
            torch.cuda.synchronize()
            job.epoch_end({"loss": float(loss.detach()), "val_loss": val_loss})


def nvml_energy_j() -> float:
    import pynvml

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    return pynvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0


def write(out: Path, rows: list, runs: list) -> None:
    with (out / "traces.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job_id", "epoch", "epoch_end_time_s", "epoch_energy_j"])
        w.writerows(rows)
    with (out / "runs.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(runs[0]))
        w.writeheader()
        w.writerows(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "traces" / "gpu")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seconds-per-epoch", type=float, default=2.0)
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument(
        "--loader-jobs",
        type=int,
        default=0,
        help="also this many runs with a DataLoader, augmentation and checkpoints",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = 19866
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as state:
        proc = start_exporter(port, state)
        try:
            time.sleep(1.0)
            metrics = get(url + "/metrics").decode()
            (args.out / "metrics.txt").write_text(metrics)
            assert "joulecast_gpu_power_watts{" in metrics, "no GPU power published"
            rows, runs = [], []
            loaders = [(64, 256), (96, 128), (128, 256), (64, 64), (160, 256), (96, 512)]
            plan = [("synthetic", m) for m in models()[: args.jobs]] + [
                ("loader", (f"h200-loader-w{w}-b{b}", w, b)) for w, b in loaders[: args.loader_jobs]
            ]
            for kind, spec in plan:
                e0 = nvml_energy_j()
                if kind == "synthetic":
                    job_id, model, batch, bf16, frozen = spec
                    steps = train(
                        job_id, model, batch, bf16, frozen, url, args.epochs, args.seconds_per_epoch
                    )
                else:
                    job_id, width, batch = spec
                    bf16, frozen, steps = False, 0, 0
                    train_loader(job_id, width, batch, args.epochs, url)
                e1 = nvml_energy_j()
                body = json.loads(get(f"{url}/api/v1/jobs/{job_id}"))
                epochs = body["epochs"]
                t0 = body["created_at"]
                prev = 0.0
                for e in epochs:
                    rows.append(
                        (
                            job_id,
                            e["epoch"],
                            round(e["timestamp"] - t0, 3),
                            round(e["energy_joules"] - prev, 3),
                        )
                    )
                    prev = e["energy_joules"]
                runs.append(
                    {
                        "job_id": job_id,
                        "epochs": len(epochs),
                        "steps_per_epoch": steps,
                        "bf16": bf16,
                        "frozen_epochs": frozen,
                        "exporter_energy_j": round(body["energy_joules"], 1),
                        "nvml_counter_energy_j": round(e1 - e0, 1),
                    }
                )
                print(json.dumps(runs[-1]), flush=True)
                write(args.out, rows, runs)  # after each run: a cut-short session keeps them
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    gpu = next((ln for ln in metrics.splitlines() if ln.startswith("joulecast_gpu_info{")), "")
    print(gpu)
    print(f"wrote {len(rows)} epochs of {len(runs)} jobs to {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
