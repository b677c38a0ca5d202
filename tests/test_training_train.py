"""Training end to end on CPU: the smoke config reduces the loss, resumes, and its checkpoint evaluates."""
import json
import math
import shutil

import pytest
import torch

from ha2g_model.checkpoint import checkpoint_graphs, load_checkpoint
from training.train import TrainConfig, train

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    from training.synthetic import make_corpus
    from training.windows import write_dataset

    out = tmp_path_factory.mktemp("smoke") / "windows"
    sequences = make_corpus(10, n_speakers=4, seed=0, seconds=8)
    split = {s.name: "val" if s.speaker.endswith("3") else "train" for s in sequences}
    write_dataset(sequences, out, "ted_expressive", split_of=split)
    return out


@needs_espeak
def test_smoke_training_reduces_the_loss_and_resumes(smoke_data, tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig.from_yaml("training/configs/smoke.yaml", [f"data={smoke_data}", f"out={tmp_path / 'run'}"])
    result = train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(cfg.epochs))
    assert rows[-1]["train_huber"] < 0.7 * rows[0]["train_huber"]
    assert min(r["val_huber"] for r in rows) < rows[0]["val_huber"]
    assert not rows[0]["gan"] and rows[-1]["gan"] and "train_gan_d" in rows[-1]  # GAN after the warm-up only
    model, vocab, meta = load_checkpoint(tmp_path / "run" / "best")
    assert meta["epoch"] == result["best_epoch"] and len(vocab) == model.config.n_words
    assert set(checkpoint_graphs(tmp_path / "run" / "best")) == {"encode", "decode"}  # the best weights' own graphs
    # resume: one more epoch continues the same run from last.pt
    more = TrainConfig.from_yaml("training/configs/smoke.yaml", [f"data={smoke_data}", f"out={tmp_path / 'run'}",
                                                                  f"epochs={cfg.epochs + 1}"])
    train(more, resume=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(cfg.epochs + 1))


def _arm_only_data(path, placeholder_seed=None):
    """Windows whose source has torso and arms only (no fingers, no face), moving, with words: no espeak needed.
    The missing bones hold rest directions, or with `placeholder_seed` random ones outside the seed frames."""
    import numpy as np

    from ha2g_model.skeleton import TED_EXPRESSIVE
    from training.windows import N_SEED, STRIDE, Sequence, WindowFilter, write_dataset

    rng = np.random.default_rng(0)
    covered = np.zeros(42, dtype=bool)
    covered[list(TED_EXPRESSIVE.levels[2])] = True
    covered[[37, 38, 39, 40, 41]] = False  # the face too: level 1 keeps only the torso
    n = 64
    not_seed = np.arange(n) % STRIDE >= N_SEED  # frames no window (stride 10) starts with
    sequences = []
    for k in range(6):
        directions = TED_EXPRESSIVE.rest_directions()[None] + 0.3 * np.sin(np.arange(n) / 4 + k)[:, None, None] \
            * rng.normal(size=(1, 42, 3))
        directions[:, ~covered] = TED_EXPRESSIVE.rest_directions()[~covered]
        if placeholder_seed is not None:
            garbage = np.random.default_rng([placeholder_seed, k]).normal(size=(n, 42, 3))
            directions[np.ix_(not_seed, ~covered)] = garbage[np.ix_(not_seed, ~covered)]
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        audio = (0.1 * np.sin(np.arange(int(n / 15 * 16000)) * (0.02 + 0.01 * k))).astype(np.float32)
        words = [(w, 0.5 * i, 0.5 * i + 0.4) for i, w in enumerate("we move our arms while we talk".split())]
        sequences.append(Sequence(f"arms{k}", f"s{k % 3}", directions.astype(np.float32), audio, words, "recordings",
                                  valid=covered))
    write_dataset(sequences, path, "ted_expressive", split_of={f"arms{k}": "val" if k == 5 else "train"
                                                               for k in range(6)}, flt=WindowFilter(enabled=False))
    return path


def test_arm_only_data_trains_with_mirroring_and_never_learns_its_placeholders(tmp_path):
    """A partial skeleton, mirrored half of the time, through the whole loop with the GAN on: finite losses, and
    what the missing bones hold (outside the seed frames, which are model input) changes no parameter and no
    logged number: generator, discriminator and validation all ignore it."""
    torch.set_num_threads(1)
    runs = {}
    for name, placeholder_seed in (("rest", None), ("garbage", 1)):
        data = _arm_only_data(tmp_path / f"data_{name}", placeholder_seed)
        cfg = TrainConfig.from_yaml("training/configs/smoke.yaml", [
            f"data={data}", f"out={tmp_path / name}", "epochs=2", "batch_size=4", "gan_warmup_epochs=1",
            "mirror=0.5", "checkpoint_every=100"])
        train(cfg)
        runs[name] = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
    rows = runs["rest"]
    assert len(rows) == 2 and rows[-1]["gan"] and "train_gan_d" in rows[-1]
    for row in rows:
        assert all(math.isfinite(v) for k, v in row.items() if k.startswith(("train_", "val_")))
    numbers = [{k: v for k, v in row.items() if k != "windows_per_s"} for row in runs["garbage"]]
    assert numbers == [{k: v for k, v in row.items() if k != "windows_per_s"} for row in rows]
    _assert_same(_params(tmp_path / "rest")[0], _params(tmp_path / "garbage")[0], atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_on_cuda_with_mixed_precision(tmp_path, amp):
    """The whole loop on a GPU under autocast (fp16 through the loss scaler), GAN on: finite losses that fall, and a
    best checkpoint that loads on the CPU with its ONNX graphs."""
    data = _arm_only_data(tmp_path / "data")
    cfg = TrainConfig.from_yaml("training/configs/smoke.yaml", [
        f"data={data}", f"out={tmp_path / 'run'}", "epochs=8", "batch_size=4", "gan_warmup_epochs=2",
        "mirror=0.5", "checkpoint_every=100", "device=cuda", f"amp={amp}"])
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and rows[-1]["gan"]
    for row in rows:
        assert all(math.isfinite(v) for k, v in row.items() if k.startswith(("train_", "val_")))
    assert rows[-1]["train_huber"] < rows[0]["train_huber"]
    model, _, _ = load_checkpoint(tmp_path / "run" / "best")
    assert next(model.parameters()).device.type == "cpu"
    assert set(checkpoint_graphs(tmp_path / "run" / "best")) == {"encode", "decode"}


def test_unknown_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_yaml("training/configs/smoke.yaml", ["learning_rate=1"])


@pytest.mark.parametrize("name", ["smoke", "compact_expressive", "ted_expressive", "ted_gesture"])
def test_shipped_configs_parse_and_build_a_model(name):
    from ha2g_model.config import HA2GConfig

    cfg = TrainConfig.from_yaml(f"training/configs/{name}.yaml")
    config = HA2GConfig.preset(cfg.preset, n_words=100, n_speakers=10, **cfg.model)
    assert config.skeleton in ("ted_gesture", "ted_expressive") and cfg.batch_size > 0


def _params(run_dir):
    """The trained parameters of a run's resume point (BN running statistics are not trained)."""
    saved = torch.load(run_dir / "last.pt", weights_only=True)
    model, _, _ = load_checkpoint(run_dir / "best")
    names = {name for name, _ in model.named_parameters()}
    return {k: v for k, v in saved["model"].items() if k in names}, saved


def _assert_same(a, b, atol):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


FAST = ["batch_size=8", "workers=0", "gan_warmup_epochs=1", "eval_every=1", "checkpoint_every=100"]


@needs_espeak
def test_resume_mid_epoch_neither_repeats_nor_skips_data(smoke_data, tmp_path):
    torch.set_num_threads(1)
    opts = [f"data={smoke_data}", "epochs=2", *FAST, "workers=1"]  # the batches come from a worker process
    straight = TrainConfig.from_yaml("training/configs/smoke.yaml", opts + [f"out={tmp_path / 'a'}"])
    train(straight)
    stopped = TrainConfig.from_yaml("training/configs/smoke.yaml", opts + [f"out={tmp_path / 'b'}", "max_steps=3"])
    state = train(stopped)
    assert state["epoch"] == 0 and state["batch"] == 3  # stopped inside the first epoch
    train(TrainConfig.from_yaml("training/configs/smoke.yaml", opts + [f"out={tmp_path / 'b'}"]), resume=True)
    a, saved_a = _params(tmp_path / "a")
    b, saved_b = _params(tmp_path / "b")
    assert saved_a["step"] == saved_b["step"] and saved_b["epoch"] == 2
    _assert_same(a, b, atol=1e-6)  # the same batches, in the same order, with the same noise
    rows = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("partial", False)) for r in rows] == [(0, True), (0, False), (1, False)]


@needs_espeak
@pytest.mark.slow
def test_two_torchrun_processes_train_like_one_process(smoke_data, tmp_path):
    """2 processes (gloo) at global batch 8 = one process with 2 micro-batches of 4: DDP all-reduces the gradients
    of generator and discriminator, each process draws the noise of its place in the batch."""
    import os
    import socket
    import subprocess
    import sys

    opts = [f"data={smoke_data}", "epochs=1", "max_steps=3", "gan_warmup_epochs=0", *FAST[:2]]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
                          "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "training.train",
                          "--config", "training/configs/smoke.yaml", *opts, f"out={tmp_path / 'ddp'}", "threads=1"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    torch.set_num_threads(1)
    train(TrainConfig.from_yaml("training/configs/smoke.yaml", opts + [f"out={tmp_path / 'one'}", "accumulate=2"]))
    ddp, saved = _params(tmp_path / "ddp")
    one, _ = _params(tmp_path / "one")
    assert saved["step"] == 3
    _assert_same(ddp, one, atol=1e-5)
    rows = (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
    assert len(rows) == 1 and "train_gan_d" in json.loads(rows[0])  # rank 0 alone logs; both halves trained
