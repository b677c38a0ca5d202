"""Streaming training data: segments store each frame once and read back as the whole windows, the old format
converts, the epoch order is a seeded shard-local shuffle that keeps source weights, micro-batches split the
same global batches for any number of processes, and mirrored windows are drawn from the seed and served mirrored
with their bone mask."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from ha2g_model.audio import window_spectrogram
from ha2g_model.skeleton import TED_EXPRESSIVE, mirror_directions, normalize_directions
from training.data import WindowBatches, WindowDataset, epoch_order
from training.windows import (N_FRAMES, WINDOW_ARRAYS, Sequence, WindowFilter, convert, load_windows, pack_segments,
                              read_index, sequence_spectrogram, write_dataset)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def corpus():
    from training.synthetic import make_corpus

    return make_corpus(8, n_speakers=4, seed=1, seconds=8)


@pytest.fixture(scope="module")
def small_data(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "windows"
    split = {s.name: "val" if s.speaker.endswith("3") else "train" for s in corpus}
    write_dataset(corpus, out, "ted_expressive", split_of=split, shard_size=16)
    return out


@needs_espeak
def test_segments_hold_every_window_of_a_sequence_once(corpus, small_data):
    index = read_index(small_data)
    assert len(index["shards"]["train"]) > 2  # several shards, so the readers cross shard boundaries
    train = load_windows(small_data, "train")
    assert len(train) == index["windows"]["train"] and len(train) > 40
    for i in (0, len(train) // 2, len(train) - 1):  # each window is exactly its sequence's frames, columns, samples
        seq = corpus[train.sequence[i]]
        start = int(train.start[i])
        np.testing.assert_array_equal(train.dir_vec[i], seq.directions[start:start + N_FRAMES])
        spec = window_spectrogram(sequence_spectrogram(seq.audio), start).astype(np.float16)
        np.testing.assert_array_equal(train.spec[i], spec)
    # overlapping windows share their stored frames: at stride 10 a window costs well under its 34 frames
    stored = 0
    for shard in index["shards"]["train"]:
        with safe_open(str(small_data / shard["file"]), framework="numpy") as f:
            stored += f.get_slice("dir_vec").get_shape()[0]
    assert stored < 0.6 * N_FRAMES * len(train)
    # three windows of one sequence, 10 frames apart, pack into one segment of 54 frames
    first = [{k: getattr(train, k)[i] for k in WINDOW_ARRAYS} for i in range(3)]
    assert [w["start"] for w in first] == [0, 10, 20] and len(set(w["sequence"] for w in first)) == 1
    (segment,) = pack_segments(first)
    assert segment["dir_vec"].shape[0] == 54 and segment["frame"].tolist() == [0, 10, 20]


@needs_espeak
def test_old_format_converts_to_the_same_windows(small_data, tmp_path):
    train = load_windows(small_data, "train")
    old = tmp_path / "old"
    old.mkdir()
    index = read_index(small_data)
    half = len(train) // 2 + 3  # a sequence continues across the old shard boundary
    shards = []
    for k, rows in enumerate((slice(0, half), slice(half, None))):
        name = f"train-{k:05d}.safetensors"
        save_file({key: np.ascontiguousarray(getattr(train, key)[rows]) for key in WINDOW_ARRAYS}, str(old / name))
        shards.append({"file": name, "n": len(train.start[rows])})
    (old / "index.json").write_text(json.dumps(index | {"format": "ha2g_windows/1",
                                                        "shards": {"train": shards, "val": [], "test": []}}))
    shutil.copyfile(small_data / "vocab.json", old / "vocab.json")
    with pytest.raises(ValueError, match="python -m training.windows --convert"):
        load_windows(old, "train")
    convert(old, tmp_path / "new")
    again = load_windows(tmp_path / "new", "train")
    for key in WINDOW_ARRAYS:
        np.testing.assert_array_equal(getattr(again, key), getattr(train, key))
    old_bytes = sum(p.stat().st_size for p in old.glob("*.safetensors"))
    new_bytes = sum(p.stat().st_size for p in (tmp_path / "new").glob("*.safetensors"))
    assert new_bytes < 0.5 * old_bytes  # overlapping windows stored once


@needs_espeak
def test_dataset_reads_windows_lazily_with_a_bounded_number_of_open_shards(small_data):
    windows = load_windows(small_data, "train")
    poses = windows.normalized_poses()
    dataset = WindowDataset(small_data, "train", max_open=2)
    assert len(dataset) == len(windows)
    order = epoch_order(dataset.shard_of(), seed=0, epoch=0, group=2)
    for i in order:
        spec, words, pose, speaker, valid = dataset[int(i)]
        np.testing.assert_array_equal(pose.numpy(), poses[i])
        assert valid.shape == (N_FRAMES, 42) and valid.all()  # synthetic motion has every bone
        np.testing.assert_array_equal(spec.numpy(), windows.spec[i].astype(np.float32))
        assert words.tolist() == windows.words[i].tolist() and int(speaker) == windows.speaker[i]
        assert len(dataset._open) <= 2
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    with pytest.raises(ValueError, match="no test windows"):
        WindowDataset(small_data, "test")


def test_epoch_order_is_a_seeded_shard_local_shuffle():
    shard_of = np.repeat(np.arange(10), 50)
    order = epoch_order(shard_of, seed=3, epoch=0, group=2)
    assert sorted(order.tolist()) == list(range(500))  # every window once
    assert order.tolist() == epoch_order(shard_of, seed=3, epoch=0, group=2).tolist()
    assert order.tolist() != epoch_order(shard_of, seed=3, epoch=1, group=2).tolist()
    groups = [set(shard_of[order[i:i + 100]].tolist()) for i in range(0, 500, 100)]
    assert all(len(g) == 2 for g in groups) and set().union(*groups) == set(range(10))  # 2 shards at a time
    assert order[:100].tolist() != sorted(order[:100].tolist())  # shuffled inside the group


def test_weighted_order_oversamples_a_source():
    shard_of = np.repeat(np.arange(4), 250)
    weights = np.ones(1000)
    weights[:100] = 8.0  # 100 windows weighted 8: expected share 800 / 1700
    order = epoch_order(shard_of, seed=0, epoch=0, weights=weights, group=2)
    share = np.mean(order < 100)
    assert len(order) == 1000 and 0.40 < share < 0.54


def test_processes_and_accumulation_split_the_same_global_batches():
    shard_of = np.repeat(np.arange(3), 40)
    one = WindowBatches(shard_of, 16, seed=0, accumulate=4)
    two = [WindowBatches(shard_of, 16, seed=0, rank=r, world=2, accumulate=2) for r in range(2)]
    for sampler in [one, *two]:
        sampler.set_epoch(1)
    micro_one = list(one)
    micro_two = [list(s) for s in two]
    assert len(micro_one) == 7 * 4 and all(len(b) == 4 for b in micro_one)
    for step in range(7):
        two_processes = micro_two[0][2 * step:2 * step + 2] + micro_two[1][2 * step:2 * step + 2]
        assert micro_one[4 * step:4 * step + 4] == two_processes
    assert [two[1].chunk(a) for a in range(2)] == [2, 3]
    resumed = WindowBatches(shard_of, 16, seed=0, accumulate=4)
    resumed.set_epoch(1, start_step=5)
    assert list(resumed) == micro_one[20:]
    with pytest.raises(ValueError, match="multiple of"):
        WindowBatches(shard_of, 10, seed=0, world=4)
    with pytest.raises(ValueError, match="fewer than one batch"):
        WindowBatches(shard_of, 256, seed=0)


def test_mirror_draws_come_from_the_seed_and_leave_the_order_alone():
    shard_of = np.repeat(np.arange(3), 40)
    plain = WindowBatches(shard_of, 16, seed=0, accumulate=2)
    mirrored = WindowBatches(shard_of, 16, seed=0, accumulate=2, mirror=0.5)
    again = WindowBatches(shard_of, 16, seed=0, accumulate=2, mirror=0.5)
    for sampler in (plain, mirrored, again):
        sampler.set_epoch(2)
    pairs = list(mirrored)
    assert all(isinstance(i, int) for batch in plain for i in batch)
    assert [[i for i, _ in batch] for batch in pairs] == list(plain)  # the same windows in the same order
    assert pairs == list(again)  # resumable and the same in every process
    flips = [f for batch in pairs for _, f in batch]
    assert 0.3 < np.mean(flips) < 0.7
    mirrored.set_epoch(3)
    assert [f for batch in mirrored for _, f in batch] != flips
    always = WindowBatches(shard_of, 16, seed=0, mirror=1.0)
    assert all(f for batch in always for _, f in batch)
    with pytest.raises(ValueError, match="mirror"):
        WindowBatches(shard_of, 16, seed=0, mirror=1.5)


def test_a_mirrored_window_is_served_with_its_mirrored_bone_mask(tmp_path):
    """A source that lacks the left hand's fingers: mirrored, the window lacks the right hand's."""
    n = 60
    rng = np.random.default_rng(0)
    directions = TED_EXPRESSIVE.rest_directions()[None] + 0.2 * rng.normal(size=(n, 42, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    left_fingers = list(range(5, 20))  # the bones from the left wrist on (TED Expressive vecs 5-19)
    valid = np.ones(42, dtype=bool)
    valid[left_fingers] = False
    audio = (0.1 * np.sin(np.arange(int(n / 15 * 16000)) * 0.05)).astype(np.float32)
    seq = Sequence("lefty", "s", directions.astype(np.float32), audio, [("hi", 0.1, 0.5)], "recordings",
                   valid=valid)
    write_dataset([seq], tmp_path / "w", "ted_expressive", split_of={"lefty": "train"}, flt=WindowFilter(enabled=False))
    dataset = WindowDataset(tmp_path / "w", "train")
    windows = load_windows(tmp_path / "w", "train")
    spec, words, pose, speaker, valid_plain = dataset[1]
    spec_m, words_m, pose_m, speaker_m, valid_mirrored = dataset[(1, True)]
    assert not valid_plain[:, left_fingers].any() and valid_plain[:, 22:37].all()
    assert valid_mirrored[:, left_fingers].all() and not valid_mirrored[:, 22:37].any()  # now the right hand's
    expected = normalize_directions(mirror_directions(windows.dir_vec[1], TED_EXPRESSIVE), TED_EXPRESSIVE)
    np.testing.assert_allclose(pose_m.numpy(), expected, atol=1e-6)
    assert not np.allclose(pose_m.numpy(), pose.numpy())
    assert torch.equal(spec_m, spec) and torch.equal(words_m, words) and int(speaker_m) == int(speaker)
