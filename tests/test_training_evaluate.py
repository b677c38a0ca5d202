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
                      str(ted_culture_dir), compare={"again": str(tmp_path / "ckpt")}, espeak=True)
    models = ("model", "model (streamed)", "again", "again (streamed)")
    assert set(report["clips"]) == set(ROWS) | set(models) and report["clip_names"] == sorted(ted_culture.TEST_CLIPS)
    clips_table = report["clips"]
    assert clips_table["ground truth"]["vel_hist_dist"] < 1e-6 and clips_table["ground truth"]["l1"] == 0.0
    assert clips_table["mean pose"]["loudness_speed_corr"] == 0.0
    assert clips_table["ground truth"]["loudness_speed_corr"] > clips_table["mismatched real clip"]["loudness_speed_corr"]
    # real talks follow their own speech more than time-shifted speech
    assert clips_table["ground truth"]["loudness_speed_corr"] > clips_table["ground truth"]["loudness_speed_corr_chance"]
    assert clips_table["again"] == clips_table["model"]  # the same weights, compared as another checkpoint
    assert clips_table["model (streamed)"]["l1"] != clips_table["model"]["l1"]  # streaming is a separate run
    sets = report["clip_sets"]
    assert sets["ground truth"]["wrist_excursion_ratio"] == sets["ground truth"]["posture_spread_ratio"] == 1.0
    assert sets["mean pose"]["wrist_excursion_ratio"] < 1e-4 and sets["mean pose"]["posture_spread"] < 1e-4
    assert sets["mismatched real clip"]["posture_spread_ratio"] > 0.3  # other real speakers hold their arms otherwise
    for row in ROWS + models:
        for robot in ("pepper", "nao"):
            assert 0.0 <= report["limits"][row][robot]["frames_at_limit"] <= 1.0
    speech = report["speech"]["espeak-ng speech (the robot demo's sentences)"]
    assert speech["again"] == speech["model"] and speech["model"]["words_wrist_distance"] > 0  # the words count
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
    assert "**ted_culture** (training sequences: 7, sampling weight 1)" in readme and "synthetic**" not in readme
    assert "non-commercial" in readme and "| model |" in readme and "tiny_expressive" in readme
    assert "BEAT speech-only takes" in readme and "espeak-ng speech" in readme
    assert {p.name for p in dest.iterdir()} >= {"model.safetensors", "config.json", "vocab.json", "README.md",
                                                 "report.md", "report.json", "trajectories.png"}


def test_feature_net_loss_ignores_missing_bones():
    from training.train_feature_net import masked_l1

    target, recon = torch.randn(2, 34, 126), torch.randn(2, 34, 126)
    valid = torch.ones(2, 34, 126)
    valid[..., -15:] = 0  # the face of a BEAT window
    placeholder = target.clone()
    placeholder[..., -15:] = 1e6
    assert masked_l1(recon, placeholder, valid) == masked_l1(recon, target, valid)
    assert torch.isclose(masked_l1(recon, target, torch.ones_like(valid)), torch.nn.functional.l1_loss(recon, target))
