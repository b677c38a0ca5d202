"""Evaluation: the report has the four rows for whole clips and windows, and the FGD feature net trains."""
import json

import numpy as np
import pytest
import torch

from ha2g_model.checkpoint import save_checkpoint
from ha2g_model.config import HA2GConfig
from ha2g_model.model import HA2G
from training import ted_culture
from ha2g_model.engine import GestureEngine
from training.evaluate import ROWS, evaluate
from training.export_default import relabel_speaker, ship
from training.feature_net import FeatureNet, FeatureNetConfig, load_feature_net
from training.train_feature_net import train_feature_net
from training.windows import build_vocab, write_dataset


def test_feature_net_has_the_official_layout():
    net = FeatureNet(FeatureNetConfig(pose_dim=27, feature_dim=32))
    assert net.encoder.out_net[0].in_features == 384  # 32 channels x 12 frames for 34-frame windows
    recon, mu, logvar = net(torch.randn(3, 34, 27))
    assert recon.shape == (3, 34, 27) and mu.shape == logvar.shape == (3, 32)
    with pytest.raises(ValueError, match="34"):
        net(torch.randn(3, 30, 27))


def test_evaluate_writes_report_with_baselines(ted_culture_dir, tmp_path):
    torch.manual_seed(0)
    clips = ted_culture.load_clips(ted_culture_dir)
    split = {c.name: ted_culture.split_of(c.name) for c in clips}
    vocab = build_vocab(clips)
    write_dataset(clips, tmp_path / "w", "ted_expressive", split_of=split, vocab=vocab)
    train_feature_net(str(tmp_path / "w"), str(tmp_path / "fn"), epochs=2, batch_size=16)
    assert load_feature_net(tmp_path / "fn").config.feature_dim == 128
    speakers = sorted({c.speaker for c in clips})
    model = HA2G(HA2GConfig.preset("tiny_expressive", n_words=len(vocab), n_speakers=len(speakers)))
    save_checkpoint(tmp_path / "ckpt", model, vocab, {"epoch": 0, "speakers": speakers})
    report = evaluate(str(tmp_path / "ckpt"), str(tmp_path / "eval"), str(tmp_path / "w"), str(tmp_path / "fn"),
                      str(ted_culture_dir))
    assert set(report["clips"]) == set(ROWS) and report["clip_names"] == sorted(ted_culture.TEST_CLIPS)
    clips_table = report["clips"]
    assert clips_table["ground truth"]["vel_hist_dist"] < 1e-6 and clips_table["ground truth"]["l1"] == 0.0
    assert clips_table["mean pose"]["loudness_speed_corr"] == 0.0
    assert clips_table["ground truth"]["loudness_speed_corr"] > clips_table["mismatched real clip"]["loudness_speed_corr"]
    windows = report["windows"]["ted_culture"]
    assert windows["ground truth"]["fgd"] < 1e-3 and windows["mean pose"]["fgd"] > windows["mismatched real clip"]["fgd"]
    md = (tmp_path / "eval" / "report.md").read_text()
    assert all(row in md for row in ROWS)
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["clips"]["model"]["jerk"] >= 0
    assert (tmp_path / "eval" / "trajectories.png").stat().st_size > 10_000


def test_ship_relabels_the_default_speaker_and_writes_a_readme(ted_culture_dir, tmp_path):
    torch.manual_seed(1)
    clips = ted_culture.load_clips(ted_culture_dir)
    vocab = build_vocab(clips)
    index = write_dataset(clips, tmp_path / "w", "ted_expressive", vocab=vocab,
                          split_of={c.name: ted_culture.split_of(c.name) for c in clips})
    speakers = index["speakers"]
    model = HA2G(HA2GConfig.preset("tiny_expressive", n_words=len(vocab), n_speakers=len(speakers)))
    # relabelling moves a style to id 0 without changing it
    clip = clips[0]
    before = GestureEngine(model, vocab, speaker=3).generate_utterance(clip.audio, clip.words)
    relabelled = relabel_speaker(model, speakers, 3)
    assert relabelled[0] == speakers[3] and relabelled[3] == speakers[0]
    np.testing.assert_allclose(GestureEngine(model, vocab, speaker=0).generate_utterance(clip.audio, clip.words),
                               before, atol=1e-6)
    save_checkpoint(tmp_path / "run" / "best", model, vocab, {"epoch": 0, "step": 1, "speakers": relabelled})
    (tmp_path / "run" / "train_config.yaml").write_text("preset: tiny_expressive\n")
    dest = ship(str(tmp_path / "run"), str(tmp_path / "w"), None, tmp_path / "dest", ted_culture_dir)
    meta = json.loads((dest / "config.json").read_text())["meta"]
    real_train = {c.speaker for c in clips if ted_culture.split_of(c.name) == "train"}
    assert meta["speakers"][0] == meta["default_speaker"]["name"] and meta["speakers"][0] in real_train
    assert set(meta["default_speaker"]["candidates"]) == real_train
    readme = (dest / "README.md").read_text()
    assert "NOT real data" in readme and "| model |" in readme and "tiny_expressive" in readme
    assert {p.name for p in dest.iterdir()} >= {"model.safetensors", "config.json", "vocab.json", "README.md",
                                                 "report.md", "report.json", "trajectories.png"}
