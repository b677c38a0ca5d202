"""Training end to end on CPU: the smoke config reduces the loss, resumes, and its checkpoint evaluates."""
import json
import shutil

import pytest
import torch

from ha2g_model.checkpoint import load_checkpoint
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
    # resume: one more epoch continues the same run from last.pt
    more = TrainConfig.from_yaml("training/configs/smoke.yaml", [f"data={smoke_data}", f"out={tmp_path / 'run'}",
                                                                  f"epochs={cfg.epochs + 1}"])
    train(more, resume=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(cfg.epochs + 1))


def test_unknown_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_yaml("training/configs/smoke.yaml", ["learning_rate=1"])


@pytest.mark.parametrize("name", ["smoke", "compact_expressive", "ted_expressive", "ted_gesture"])
def test_shipped_configs_parse_and_build_a_model(name):
    from ha2g_model.config import HA2GConfig

    cfg = TrainConfig.from_yaml(f"training/configs/{name}.yaml")
    config = HA2GConfig.preset(cfg.preset, n_words=100, n_speakers=10, **cfg.model)
    assert config.skeleton in ("ted_gesture", "ted_expressive") and cfg.batch_size > 0
