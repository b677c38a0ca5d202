"""Hostile and broken files, as a user or an attacker could hand them over: each is refused before memory is
allocated for it, with one line that names what is wrong (never a traceback, never torch's advice to disable its
safe loading). Real files throughout; the peak memory of long inputs is measured in benchmarks/hostile_inputs.py."""
import argparse
import json
import re
import shutil
import weakref
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ha2g_model import official
from ha2g_model.backends import create_backend
from ha2g_model.checkpoint import WEIGHTS, load_checkpoint, read_checkpoint, save_checkpoint
from ha2g_model.config import MAX_PARAMETERS, PRESETS, HA2GConfig
from ha2g_model.engine import DEFAULT_CHECKPOINT
from ha2g_model.model import HA2G
from ha2g_model.render import find_ffmpeg, render_frames, write_video
from ha2g_model.skeleton import get_skeleton
from ha2g_model.text import Vocab
from ha2g_model.words import read_words

MAX_ERROR_CHARS = 400

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def one_line(error) -> str:
    text = str(error.value if hasattr(error, "value") else error)
    assert "\n" not in text and len(text) <= MAX_ERROR_CHARS and not text.rstrip().endswith(":"), text[:1000]
    assert "weights_only" not in text
    return text


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_gesture"))
    vocab = Vocab([f"w{i}" for i in range(model.config.n_words - 4)])
    return save_checkpoint(tmp_path_factory.mktemp("tiny"), model, vocab)


def copy_with(checkpoint: Path, tmp_path: Path, **config_changes) -> Path:
    """A copy of `checkpoint` whose config.json has `config_changes` applied."""
    out = shutil.copytree(checkpoint, tmp_path / "ckpt")
    described = json.loads((out / "config.json").read_text())
    described["config"].update(config_changes)
    (out / "config.json").write_text(json.dumps(described))
    return out


# --- config.json ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, names", [
    ({"hidden_size": 10**7}, "hidden_size"),  # allocated until killed (6 GB)
    ({"n_layers": 10**5}, "n_layers"),
    ({"hidden_size": "300"}, "hidden_size must be an integer, got str"),
    ({"n_speakers": 10**12}, "n_speakers"),
    ({"hidden_size": {"nested": [[[300]]]}}, "hidden_size must be an integer, got dict"),
    ({"audio_widths": [8, 16, "32", 64]}, "audio_widths must be a list of integers"),
    ({"n_words": 3_000_000, "word_dim": 1000}, "word tables (n_words x word_dim)"),
    ({"hidden_size": 4096, "n_layers": 32}, "pose GRUs (hidden_size, n_layers)"),
    ({"dropout": "0.3", "shared_word_embedding": "yes"}, "dropout must be a finite number, got str '0.3'; "
                                                         "shared_word_embedding must be true or false"),
])
def test_config_sizes_and_types_are_refused_before_a_model_is_built(tiny_checkpoint, tmp_path, changes, names):
    path = copy_with(tiny_checkpoint, tmp_path, **changes)
    with pytest.raises(ValueError) as refused:
        read_checkpoint(path)
    assert names in one_line(refused) and "config.json" in str(refused.value)


@pytest.mark.parametrize("text, message", [
    ('{"format": "ha2g_ros.checkpoint/1", "config": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"format": "ha2g_ros.checkpoint/1", "config": {"hidden_size": 1' + "0" * 5000 + "}}", "not valid JSON"),
    ('{"format": "ha2g_ros.checkpoint/1", "config": [1, 2]}', "mapping of field names"),
    ('{"format": "ha2g_ros.checkpoint/1", "config": {}, "meta": 5}', "meta must be a JSON object"),
])
def test_malformed_config_json_is_one_line(tiny_checkpoint, tmp_path, text, message):
    path = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    (path / "config.json").write_text(text)
    with pytest.raises(ValueError) as refused:
        read_checkpoint(path)
    assert message in one_line(refused)


def test_parameter_estimate_is_close_to_the_built_model():
    """The estimate that refuses absurd sizes counts what the model really allocates (within 5 %)."""
    for name, config in PRESETS.items():
        built = HA2G(config).n_parameters()
        assert 0.95 * built <= config.n_parameters() <= built, name
    assert PRESETS["ted_expressive"].replace(n_words=30_000, shared_word_embedding=False).n_parameters() \
        < MAX_PARAMETERS / 4  # the largest real model fits with room to spare


def test_checkpoint_path_that_is_a_file(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError) as refused:
        read_checkpoint(tiny_checkpoint / "config.json")
    assert "is not a directory" in one_line(refused)


# --- weights of another type ---------------------------------------------------------------------------------------

def test_integer_weights_are_refused_and_half_precision_converted(tiny_checkpoint, tmp_path, caplog):
    path = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    state = load_file(path / WEIGHTS)
    key = "generator.levels.0.gru.weight_hh_l0"
    save_file({**state, key: state[key].to(torch.int64)}, path / WEIGHTS)
    with pytest.raises(ValueError) as refused:
        load_checkpoint(path)
    assert f"{key}: file torch.int64 vs model torch.float32" in str(refused.value)
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, path / WEIGHTS)
    with caplog.at_level("WARNING", logger="ha2g_model.checkpoint"):
        model, _, _ = load_checkpoint(path)
    assert "torch.float16 -> torch.float32" in caplog.text
    assert model.generator.levels[0].gru.weight_hh_l0.dtype == torch.float32
    torch.testing.assert_close(model.generator.levels[0].gru.weight_hh_l0, state[key].half().float())


# --- official .bin checkpoints --------------------------------------------------------------------------------------

def test_refusals_of_official_files_are_one_line(tmp_path):
    """(A malicious pickle: tests/test_official_checkpoint.py.)"""
    (tmp_path / "empty.bin").write_bytes(b"")
    assert "is empty" in one_line(pytest.raises(ValueError, official.read_official_file, tmp_path / "empty.bin"))
    assert "is a directory" in one_line(pytest.raises(ValueError, official.read_official_file, tmp_path))
    assert "character device" in one_line(pytest.raises(ValueError, official.read_official_file, "/dev/zero"))
    legacy = tmp_path / "legacy.bin"
    torch.save({"x": torch.zeros(3)}, legacy, _use_new_zipfile_serialization=False)
    assert "not a torch zip" in one_line(pytest.raises(ValueError, official.read_official_file, legacy))
    wrong = tmp_path / "wrong.bin"
    torch.save({"args": {"hidden_size": 64}, "lang_model": 1, "speaker_model": 1, "pose_dim": 27, "audio_dict": {},
                "text_dict": {}, "dis_dict": {}, "gen_dict_1": {}}, wrong)
    assert "args must be a Namespace" in one_line(pytest.raises(ValueError, official.read_official_file, wrong))


def test_zip_bomb_is_refused_from_the_zip_directory(tmp_path, monkeypatch):
    """torch.save never compresses; a deflated record (a 2 MB file inflated to 2.4 GB) is refused unread, and so is
    an archive whose records add up to more than any HA2G checkpoint."""
    plain = tmp_path / "plain.bin"
    torch.save({"x": torch.zeros(1000)}, plain)
    bomb = tmp_path / "bomb.bin"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data/0"):
                data += bytes(50_000_000)  # 50 MB of zeros deflate to 50 kB
            out.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1_000_000
    assert "compressed records" in one_line(pytest.raises(ValueError, official.read_official_file, bomb))
    monkeypatch.setattr(official, "MAX_OFFICIAL_BYTES", 1000)
    assert "more than the 1,000" in one_line(pytest.raises(ValueError, official.read_official_file, plain))


def official_like(**args) -> dict:
    vocab = official._OfficialVocab()
    vocab.__dict__.update(n_words=10, word2index={}, index2word={})
    state = {"args": argparse.Namespace(**{"hidden_size": 64, "n_layers": 2, **args}), "pose_dim": 27,
             "lang_model": vocab, "speaker_model": vocab}
    state.update({f"gen_dict_{k + 1}": {} for k in range(3)})
    return state


@pytest.mark.parametrize("args, message", [
    ({"hidden_size": "64"}, "args.hidden_size must be an integer, got str"),
    ({"hidden_size": 10**7}, "hidden_size must be in [1, 8,192]"),
    ({"dropout_prob": [[0.3]]}, "args.dropout_prob must be a number"),
])
def test_official_args_are_checked_by_name(args, message):
    assert message in one_line(pytest.raises(ValueError, official.config_from_official, official_like(**args)))


# --- word timing files --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, message", [
    ("big.json", '[["hi", 1' + "0" * 400 + ", 2]]", "beyond any float"),  # OverflowError before
    ("huge.json", '[["hi", 1' + "0" * 5000 + ", 2]]", "not valid JSON"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("segments.json", '{"segments": 5}', "'segments' must be a list"),
    ("big.tsv", "hi\t1" + "0" * 400 + "\t2\n", "non-finite"),
    ("count.TextGrid", 'File type = "ooTextFile"\nObject class = "TextGrid"\nxmin = 0\nxmax = 1\ntiers? <exists>\n'
                       "size = 1e400\n", "not a count"),
])
def test_hostile_word_files_are_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    assert message in one_line(pytest.raises(ValueError, read_words, path))


def test_a_directory_or_a_device_is_named_as_such(tmp_path):
    assert "is a directory" in one_line(pytest.raises(ValueError, read_words, tmp_path))
    assert "character device" in one_line(pytest.raises(ValueError, read_words, Path("/dev/zero")))
    assert "does not exist" in one_line(pytest.raises(FileNotFoundError, read_words, tmp_path / "none.json"))


# --- robot profiles -------------------------------------------------------------------------------------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)) + "name: *i\n"


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    from ha2g_ros.retargeting.profile import load_profile

    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 2_000
    assert "aliases are refused" in one_line(pytest.raises(ValueError, load_profile, path))
    directory = tmp_path / "directory.yaml"
    directory.mkdir()
    assert "is a directory" in one_line(pytest.raises(ValueError, load_profile, directory))


@pytest.fixture(scope="module")
def pepper_yaml():
    import yaml

    from ha2g_ros.retargeting.profile import _profile_dir
    return yaml.safe_load((_profile_dir() / "pepper.yaml").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["arms"]["left"]["joints"].__setitem__(0, 7), "arms.left.joints: expected a list of joint names"),
    (lambda d: d["groups"].__setitem__(next(iter(d["groups"])), [None]), "groups."),
    (lambda d: d.__setitem__("torso", ["base"]), "torso (['base'])"),
    (lambda d: d["arms"]["left"].__setitem__("elbow", 3.5), "arms.left.elbow (3.5)"),
])
def test_non_string_names_in_a_profile_are_one_line(pepper_yaml, edit, message):
    import copy

    from ha2g_ros.retargeting.profile import profile_from_dict

    data = copy.deepcopy(pepper_yaml)
    edit(data)
    assert message in one_line(pytest.raises(ValueError, profile_from_dict, data, "pepper.yaml"))


@pytest.mark.parametrize("velocity", ["1e30", "1e300", "0"])
def test_non_physical_urdf_velocity_limit_is_refused(velocity):
    from ha2g_ros.retargeting.profile import load_profile, validate_against_model
    from ha2g_ros.retargeting.robot import RobotLoadError, load_model, resolve_urdf

    profile = load_profile("pepper")
    joint = profile.arms["left"].joints[0]
    xml = resolve_urdf(profile.urdf).read_text()
    block = re.search(rf'<joint name="{joint}".*?</joint>', xml, re.S).group(0)
    xml = xml.replace(block, re.sub(r'velocity="[^"]*"', f'velocity="{velocity}"', block))
    with pytest.raises(RobotLoadError) as refused:
        validate_against_model(profile, load_model(xml=xml))
    assert f"joint {joint!r} has no physical velocity limit" in str(refused.value)
    validate_against_model(profile, load_model(profile.urdf))  # the real URDF passes


# --- backends -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["banana", "cuda:x", "CUDA", "cuda:-1", "", None, 0])
def test_unknown_device_is_refused_by_every_backend(device):
    for backend in ("onnxruntime", "torch"):
        with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
            create_backend(backend, DEFAULT_CHECKPOINT, device=device)


# --- video frames are streamed ------------------------------------------------------------------------------------

def test_frames_are_rendered_and_encoded_one_at_a_time(tmp_path):
    """An hour of frames is 33 GB: render_frames makes them as they are consumed, write_video lets each go once
    encoded (at most two exist at a time here)."""
    skeleton = get_skeleton("ted_gesture")
    directions = np.repeat(skeleton.rest_directions()[None], 40, axis=0)
    frames = render_frames(directions, skeleton, size=64)
    assert not isinstance(frames, np.ndarray) and next(frames).shape == (64, 128, 3)
    if find_ffmpeg() is None:
        pytest.skip("no ffmpeg here to encode MP4")
    alive, most = set(), [0]

    def tracked():
        for i, frame in enumerate(render_frames(directions, skeleton, size=64)):
            alive.add(i)
            weakref.finalize(frame, alive.discard, i)
            most[0] = max(most[0], len(alive))
            yield frame
            del frame

    write_video(tracked(), tmp_path / "video.mp4")
    assert most[0] <= 2 and (tmp_path / "video.mp4").stat().st_size > 0
