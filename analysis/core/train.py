"""Training: the paper's recipe by default, shorter schedules by flags, resumable, seeded.

He et al. 2015, section 4.2: SGD with momentum 0.9, weight decay 1e-4 on every parameter, batch 128,
lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k; the 110-layer net warms up at lr 0.01 for
its first ~400 iterations. A shorter schedule (``--epochs E``) keeps that shape: the divisions come at
50 % and 75 % of its iterations. ``--schedule onecycle`` is a triangular schedule for short CPU runs.

Mixed precision: bfloat16 autocast on conv/linear with channels_last; the loss, BN statistics, weights
and the SGD update stay float32. On CUDA each training step (forward, backward and the SGD update) is
captured once as a CUDA graph and replayed, and several models can train at once, each on its own
stream: the small nets leave most of a GPU idle. Models with the same seed see the same batches in the
same order, exactly as each would alone, so training together changes no result.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import data as D
from .evaluate import evaluate_error
from .arch import parse_name
from .models import CifarResNet, build_model, count_params
from .zoo import PRETRAINED, save_checkpoint


@dataclass
class Schedule:
    iterations: int = 64000
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch: int = 128
    milestones: tuple[int, ...] = (32000, 48000)
    gamma: float = 0.1
    warmup_iterations: int = 0  # at warmup_lr, He et al. use 400 at lr 0.01 for ResNet-110
    warmup_lr: float = 0.01
    kind: str = "step"  # "step" (the paper's) or "onecycle"

    def lr_at(self, it: int) -> float:
        if self.kind == "onecycle":
            peak = max(1, int(0.25 * self.iterations))
            if it < peak:
                return self.lr * (0.1 + 0.9 * it / peak)
            return self.lr * max(0.0, (self.iterations - it) / max(1, self.iterations - peak))
        if it < self.warmup_iterations:
            return self.warmup_lr
        return self.lr * self.gamma ** sum(it >= m for m in self.milestones)


def make_schedule(name: str, epochs: float | None, steps_per_epoch: int, kind: str = "step",
                  lr: float = 0.1, batch: int = 128, warmup: int | None = None) -> Schedule:
    """The paper's schedule (64k iterations) or the same shape over ``epochs`` epochs."""
    depth = parse_name(name).depth
    if epochs is None:
        iters, milestones = 64000, (32000, 48000)
    else:
        iters = max(1, round(epochs * steps_per_epoch))
        milestones = (round(0.5 * iters), round(0.75 * iters))
    if warmup is None:
        warmup = 400 if depth >= 110 and kind == "step" else 0
    return Schedule(iterations=iters, lr=lr, batch=batch, milestones=milestones, kind=kind,
                    warmup_iterations=warmup)


@dataclass
class Run:
    """One model being trained: its module, optimiser state and history."""

    name: str
    model: CifarResNet
    seed: int
    schedule: Schedule
    bufs: list[torch.Tensor] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    iteration: int = 0
    epoch: int = 0
    wall_s: float = 0.0
    graph: object = None
    stream: object = None
    static_x: torch.Tensor | None = None
    static_y: torch.Tensor | None = None
    lr_t: torch.Tensor | None = None
    acc: torch.Tensor | None = None  # [sum of loss, number correct, number seen]


def _sgd_step(params: list[torch.Tensor], bufs: list[torch.Tensor], lr_t: torch.Tensor,
              momentum: float, wd: float) -> None:
    """PyTorch's SGD (momentum, dampening 0, weight decay added to the gradient), with a tensor lr
    so that a captured CUDA graph follows the schedule."""
    grads = [p.grad for p in params]
    torch._foreach_add_(grads, params, alpha=wd)
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, grads)
    torch._foreach_sub_(params, torch._foreach_mul(bufs, lr_t))


def _step(run: Run, x: torch.Tensor, y: torch.Tensor) -> None:
    model, dev = run.model, x.device.type
    with torch.autocast(dev, dtype=torch.bfloat16, cache_enabled=False):
        out = model(x)
    loss = F.cross_entropy(out.float(), y)
    loss.backward()
    with torch.no_grad():
        params = [p for p in model.parameters()]
        _sgd_step(params, run.bufs, run.lr_t, momentum=run.schedule.momentum, wd=run.schedule.weight_decay)
        run.acc[0] += loss.detach() * y.numel()
        run.acc[1] += (out.argmax(1) == y).sum()
        run.acc[2] += y.numel()


def _resume_path(out: Path, name: str) -> Path:
    return out / ".resume" / f"{name}.pt"


def _save_resume(run: Run, out: Path, gen_state: torch.Tensor, perm_state: dict) -> None:
    p = _resume_path(out, run.name)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "bufs": [b.detach().cpu() for b in run.bufs],
        "history": run.history, "iteration": run.iteration, "epoch": run.epoch, "wall_s": run.wall_s,
        "schedule": asdict(run.schedule), "seed": run.seed, "gen_state": gen_state.cpu(), "perm": perm_state,
    }
    tmp = p.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(p)


def _progress(total: int, initial: int, desc: str):
    from tqdm import tqdm

    interactive = os.isatty(2)
    return tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True,
                mininterval=0.5 if interactive else 30.0)


@dataclass
class TrainData:
    """The whole data set on the training device (airbench's layout: a batch is an index)."""

    train_split: D.Split
    test_split: D.Split
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    steps_per_epoch: int


def load_data(data: str | None, dev: torch.device, batch: int) -> TrainData:
    train_split = D.load_split("train", data, download=True, progress=True)
    test_split = D.load_split("test", data, download=True, progress=True)
    return TrainData(train_split, test_split, x_train=train_split.images.to(dev), y_train=train_split.labels.to(dev),
                     x_test=test_split.images.to(dev), y_test=test_split.labels.to(dev),
                     steps_per_epoch=len(train_split) // batch)  # the last partial batch is dropped


def make_run(name: str, sched: Schedule, seed: int, dev: torch.device, out: Path, log) -> tuple[Run, dict | None]:
    """A freshly initialised model with its optimiser state, or the one of a matching resume point."""
    torch.manual_seed(seed)
    model = build_model(name).to(dev).to(memory_format=torch.channels_last).train()
    run = Run(name, model, seed, schedule=sched)
    run.bufs = [torch.zeros_like(p) for p in model.parameters()]
    resumed = None
    rp = _resume_path(out, name)
    if rp.is_file():
        st = torch.load(rp, map_location="cpu", weights_only=True)
        if json.dumps(st["schedule"], sort_keys=True) == json.dumps(asdict(sched), sort_keys=True) and st["seed"] == seed:
            model.load_state_dict(st["model"])
            for b, s in zip(run.bufs, st["bufs"]):
                b.copy_(s)
            run.history, run.iteration, run.epoch, run.wall_s = st["history"], st["iteration"], st["epoch"], st["wall_s"]
            resumed = st
            log(f"{name}: resuming after epoch {run.epoch} (iteration {run.iteration})")
        else:
            log(f"{name}: a resume point with another schedule or seed exists; starting afresh")
    run.lr_t = torch.tensor(sched.lr_at(run.iteration), device=dev)
    run.acc = torch.zeros(3, device=dev)
    return run, resumed


def data_stream(seed: int, dev: torch.device, resumed: dict | None, epoch: int, log) -> torch.Generator:
    """One random stream per seed: the permutation and the augmentation depend on the seed alone."""
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    if resumed is not None:
        try:
            gen.set_state(resumed["gen_state"])
        except (RuntimeError, TypeError):
            # The resume point came from another device type (e.g. a GPU run continued on a CPU):
            # its random state does not transfer, so the data order continues from a derived seed.
            gen.manual_seed(seed * 100003 + epoch)
            log(f"resume point from another device type: data order re-seeded with {seed * 100003 + epoch}")
    return gen


def step_all(runs: list[Run], xb: torch.Tensor, yb: torch.Tensor, use_graphs: bool, dev: torch.device) -> None:
    """One SGD step of every run on the same batch (a CUDA-graph replay on its own stream, or eagerly)."""
    for r in runs:
        lr_now = r.schedule.lr_at(r.iteration)
        if use_graphs:
            r.stream.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(r.stream):
                xb.record_stream(r.stream)
                yb.record_stream(r.stream)
                r.static_x.copy_(xb)
                r.static_y.copy_(yb)
                r.lr_t.fill_(lr_now)
                r.graph.replay()
        else:
            r.lr_t.fill_(lr_now)
            for p in r.model.parameters():
                p.grad = None
            _step(r, xb, yb)
        r.iteration += 1


def run_epoch(runs: list[Run], td: TrainData, gen: torch.Generator, batch: int, total_iters: int, use_graphs: bool,
              dev: torch.device, bar) -> float:
    """One epoch (or what is left of the schedule); returns its wall time in seconds."""
    t0 = time.time()
    perm = torch.randperm(len(td.y_train), device=dev, generator=gen)
    steps = min(td.steps_per_epoch, total_iters - runs[0].iteration)
    for r in runs:
        r.acc.zero_()
    for s in range(steps):
        idx = perm[s * batch:(s + 1) * batch]
        xb = D.normalize(D.augment(td.x_train[idx], gen)).contiguous(memory_format=torch.channels_last)
        step_all(runs, xb, td.y_train[idx], use_graphs=use_graphs, dev=dev)
        bar.update(1)
    if use_graphs:
        torch.cuda.synchronize(dev)
    return time.time() - t0


def record_epoch(runs: list[Run], td: TrainData, dev: torch.device, epoch_s: float, dev_name: str) -> None:
    """Append the epoch's train error (augmented batches, train mode) and test error (eval mode) to each history."""
    for r in runs:
        loss_sum, correct, seen = r.acc.tolist()
        test_err = evaluate_error(r.model, td.x_test, td.y_test, device=dev)
        r.epoch += 1
        r.wall_s += epoch_s
        r.history.append({
            "epoch": r.epoch, "iteration": r.iteration, "lr": r.schedule.lr_at(r.iteration - 1),
            "train_loss": loss_sum / max(seen, 1), "train_error_pct": 100.0 * (1 - correct / max(seen, 1)),
            "test_error_pct": test_err, "epoch_s": epoch_s, "device": dev_name,
        })


def log_epoch(runs: list[Run], total_iters: int, epoch_s: float, bar, log) -> None:
    bar.set_postfix_str(" ".join(f"{r.name}:{r.history[-1]['train_error_pct']:.1f}/{r.history[-1]['test_error_pct']:.1f}%"
                                 for r in runs), refresh=True)
    if not os.isatty(2):
        log(f"epoch {runs[0].epoch} it {runs[0].iteration}/{total_iters} {epoch_s:.1f}s " + " ".join(
            f"{r.name} loss {r.history[-1]['train_loss']:.3f} train {r.history[-1]['train_error_pct']:.2f}% "
            f"test {r.history[-1]['test_error_pct']:.2f}%" for r in runs))


def write_card(r: Run, td: TrainData, out: Path, dev: torch.device, dev_name: str, use_graphs: bool,
               names: list[str], command: str, total_iters: int, log) -> dict:
    """Final errors, the weights (safetensors) and the model card that records exactly what ran."""
    final_train = evaluate_error(r.model, td.x_train, td.y_train, device=dev)
    final_test = evaluate_error(r.model, td.x_test, td.y_test, device=dev)
    card = {
        "name": r.name, **r.model.arch.describe(), "params": count_params(r.model), "normalization": D.NORMALIZATION,
        "schedule": {**asdict(r.schedule), "epochs": r.epoch, "steps_per_epoch": td.steps_per_epoch,
                     "optimizer": "SGD (momentum, weight decay on every parameter)",
                     "augmentation": "pad 4 + random 32x32 crop, horizontal flip",
                     "precision": "bfloat16 autocast, channels_last; float32 weights, loss and update",
                     "cuda_graphs": use_graphs, "trained_with": names},
        "history": r.history,
        "stopped_early": None if r.iteration >= total_iters else {
            "after_epoch": r.epoch, "iterations_run": r.iteration, "of_iterations": total_iters,
            "note": "the run was ended before its schedule finished (--stop-after-epoch or a finish file); lr followed "
                    "the full schedule up to that point"},
        "train_error_pct": final_train, "test_error_pct": final_test,
        "error_note": "train error: eval mode on the 50k un-augmented training images; test error: the 10k "
                      "test images. Measured on the JPEG copy of CIFAR-10, not comparable to published numbers.",
        "data": {"source": td.test_split.source.split(":", 1)[0], "train_images": len(td.train_split),
                 "test_images": len(td.test_split), "train_fingerprint": td.train_split.fingerprint,
                 "test_fingerprint": td.test_split.fingerprint},
        "seed": r.seed, "device": ", ".join(dict.fromkeys(h.get("device", dev_name) for h in r.history)),
        "torch": torch.__version__, "wall_time_s": round(r.wall_s, 1), "command": command,
    }
    model = r.model.to(memory_format=torch.contiguous_format)
    card["sha256"] = save_checkpoint(model, out / f"{r.name}.safetensors", {"name": r.name})
    (out / f"{r.name}.json").write_text(json.dumps(card, indent=1) + "\n")
    _resume_path(out, r.name).unlink(missing_ok=True)
    log(f"{r.name}: {final_train:.2f} % train error, {final_test:.2f} % test error -> {out / (r.name + '.safetensors')}")
    return card


def train(names: list[str], epochs: float | None = None, device: str | None = None,
          data: str | None = None, seed: int = 0, out: Path = PRETRAINED, schedule_kind: str = "step",
          lr: float = 0.1, batch: int = 128, time_limit: float | None = None, graphs: bool = True,
          stop_after_epoch: int | None = None, finish_file: str | None = None, log=None) -> dict[str, dict]:
    """Train ``names`` (together, on one device) and write ``out/NAME.safetensors`` + ``NAME.json``.

    Returns the cards. With ``time_limit`` (seconds) training stops after the epoch that would run
    past it and saves a resume point; calling again with the same arguments continues from there.
    ``stop_after_epoch`` ends the run for good after that epoch (resuming a paused run if there is one)
    and writes the weights and a card that records the early stop; so does the appearance of
    ``finish_file`` (checked after every epoch), for ending a run that is out of machine time.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    log = log or (lambda msg: print(msg, flush=True))
    out = Path(out)
    names = [parse_name(n).name for n in names]  # canonical names: one file per architecture
    t_start = time.time()
    td = load_data(data, dev, batch)
    use_graphs = graphs and dev.type == "cuda"
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.machine()})"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    made = [make_run(n, make_schedule(n, epochs, td.steps_per_epoch, kind=schedule_kind, lr=lr, batch=batch),
                     seed=seed, dev=dev, out=out, log=log) for n in names]
    runs = [r for r, _ in made]
    resumed = next((st for _, st in made if st is not None), None)
    if len({r.schedule.iterations for r in runs}) != 1 or len({r.iteration for r in runs}) != 1:
        raise ValueError("models trained together need one schedule length and one resume point; train them apart")
    total_iters = runs[0].schedule.iterations
    gen = data_stream(seed, dev, resumed, epoch=runs[0].epoch, log=log)
    if use_graphs:
        _capture_graphs(runs, dev, batch)

    stop = {"flag": False}

    def _sigint(*_):
        stop["flag"] = True
        log("interrupt: finishing this epoch, then saving a resume point")

    old = signal.signal(signal.SIGINT, _sigint) if hasattr(signal, "SIGINT") else None
    bar = _progress(total_iters, runs[0].iteration, f"train {','.join(names)} on {dev.type}")
    paused = False
    try:
        while runs[0].iteration < total_iters and (stop_after_epoch is None or runs[0].epoch < stop_after_epoch):
            epoch_s = run_epoch(runs, td, gen, batch=batch, total_iters=total_iters, use_graphs=use_graphs, dev=dev,
                                bar=bar)
            record_epoch(runs, td, dev, epoch_s=epoch_s, dev_name=dev_name)
            log_epoch(runs, total_iters, epoch_s=epoch_s, bar=bar, log=log)
            if finish_file and os.path.exists(finish_file) and runs[0].iteration < total_iters:
                stop_after_epoch = runs[0].epoch
                log(f"{finish_file} exists: ending the run after epoch {runs[0].epoch}; the cards record the early stop")
            done = runs[0].iteration >= total_iters or (stop_after_epoch is not None and runs[0].epoch >= stop_after_epoch)
            elapsed = time.time() - t_start
            if not done and (stop["flag"] or (time_limit is not None and elapsed + 1.5 * epoch_s > time_limit)):
                for r in runs:
                    _save_resume(r, out, gen.get_state(), perm_state={})
                paused = True
                log(f"paused after epoch {runs[0].epoch}; run the same command again to continue")
                break
    finally:
        bar.close()
        if old is not None:
            signal.signal(signal.SIGINT, old)
    if paused:
        return {}
    command = (f"python -m analysis train {','.join(names)}" + (f" --epochs {epochs:g}" if epochs else "")
               + (f" --schedule {schedule_kind}" if schedule_kind != "step" else "") + f" --seed {seed}"
               + (f" --stop-after-epoch {stop_after_epoch}"
                  if stop_after_epoch is not None and runs[0].iteration < total_iters else ""))
    return {r.name: write_card(r, td, out, dev, dev_name=dev_name, use_graphs=use_graphs, names=names, command=command,
                               total_iters=total_iters, log=log) for r in runs}


def _capture_graphs(runs: list[Run], dev: torch.device, batch: int) -> None:
    """Capture each run's whole training step as a CUDA graph on its own stream.

    Warm-up steps run first (as the PyTorch docs require), on a saved copy of the state that is put
    back afterwards, so capturing changes no weight, buffer or momentum.
    """
    for r in runs:
        r.stream = torch.cuda.Stream(dev)
        r.static_x = torch.zeros(batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
        r.static_y = torch.zeros(batch, dtype=torch.long, device=dev)
        r.static_x.normal_()
        r.static_y.random_(0, 10)
        saved = {k: v.clone() for k, v in r.model.state_dict().items()}
        saved_bufs = [b.clone() for b in r.bufs]
        saved_lr = r.lr_t.clone()
        r.stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(r.stream):
            for _ in range(3):
                for p in r.model.parameters():
                    p.grad = None
                _step(r, r.static_x, r.static_y)
        torch.cuda.current_stream(dev).wait_stream(r.stream)
        for p in r.model.parameters():
            p.grad = None
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=r.stream):
            _step(r, r.static_x, r.static_y)
        torch.cuda.synchronize(dev)
        with torch.no_grad():
            for k, v in r.model.state_dict().items():
                v.copy_(saved[k])
            for b, s in zip(r.bufs, saved_bufs):
                b.copy_(s)
            r.lr_t.copy_(saved_lr)
            r.acc.zero_()
        r.graph = g
