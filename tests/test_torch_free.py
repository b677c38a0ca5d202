"""Torch-free inference: a checkpoint that ships its ONNX graphs runs on onnxruntime without importing torch, and
graphs that do not fit (other weights, damaged, absent) give a clear message and the documented fallback.

The torch-free runs happen in subprocesses: this test process has torch imported already. "Without torch" is an
install where `import torch` fails, simulated by an import hook.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ha2g_model.backends import create_backend
from ha2g_model.checkpoint import EXPORT_COMMAND, GraphError, checkpoint_graphs, save_checkpoint
from ha2g_model.config import HA2GConfig
from ha2g_model.engine import GestureEngine
from ha2g_model.model import HA2G
from ha2g_model.onnx_export import main as export_main
from ha2g_model.text import Vocab

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = [("hands", 0.3, 0.6), ("up", 0.7, 1.0)]
ENGINE_RUN = """
import sys
import numpy as np
{block}
from ha2g_model.engine import GestureEngine

engine = GestureEngine.from_checkpoint({path!r}, backend="auto", hop_frames=6, lookahead_frames=4)
audio = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
whole = engine.generate_utterance(audio, {words!r})
engine.push_words({words!r})
engine.push_audio(audio)
_, streamed = engine.pull_frames()
np.savez({out!r}, whole=whole, streamed=streamed)
print(engine.backend.name, "torch" in sys.modules)
"""
NO_TORCH = """
class NoTorch:  # an install without torch: `import torch` fails
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("No module named 'torch'")


sys.meta_path.insert(0, NoTorch())
"""


def run_engine(path, out, without_torch=False) -> subprocess.CompletedProcess:
    block = NO_TORCH if without_torch else ""
    script = textwrap.dedent(ENGINE_RUN.format(block=block, path=str(path), out=str(out), words=WORDS))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_expressive")).eval()
    path = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(path, model, Vocab(["hands", "up"] + [f"w{i}" for i in range(model.config.n_words - 6)]))
    assert export_main([str(path)]) == 0
    return path, model


@pytest.fixture
def copy_of(checkpoint, tmp_path):
    path = tmp_path / "ckpt"
    path.mkdir()
    for file in checkpoint[0].iterdir():
        (path / file.name).write_bytes(file.read_bytes())
    return path


def reference(model, vocab_path):
    engine = GestureEngine(model, Vocab.load(vocab_path), backend="torch", hop_frames=6, lookahead_frames=4)
    audio = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    whole = engine.generate_utterance(audio, WORDS)
    engine.push_words(WORDS)
    engine.push_audio(audio)
    return whole, engine.pull_frames()[1]


def test_shipped_graphs_run_without_importing_torch(checkpoint, tmp_path):
    path, model = checkpoint
    assert sorted(p.name for p in path.glob("*.onnx")) == ["decode.onnx", "encode.onnx"]
    done = run_engine(path, tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onnxruntime", "False"]  # built, generated, streamed: torch never imported
    whole, streamed = reference(model, path / "vocab.json")
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_allclose(out["whole"], whole, atol=1e-4)
        np.testing.assert_allclose(out["streamed"], streamed, atol=1e-4)


def test_graphs_of_other_weights_are_not_used(copy_of, caplog):
    state = load_file(str(copy_of / "model.safetensors"))
    state["generator.levels.0.out.2.bias"] += 0.5  # weights changed after the export
    save_file(state, str(copy_of / "model.safetensors"))
    with pytest.raises(GraphError, match="exported from other weights.*ha2g-export-onnx"):
        checkpoint_graphs(copy_of)
    # with torch at hand: a warning, and the graphs of the current weights are exported into the cache
    backend = create_backend("onnxruntime", copy_of)
    assert "exported from other weights" in caplog.text
    current = create_backend("torch", copy_of)
    config = current.config
    rng = np.random.default_rng(0)
    inputs = (rng.uniform(-80, 0, (1, config.n_mels, config.spec_cols)).astype(np.float32),
              rng.integers(0, config.n_words, (1, 34)), np.zeros((1, 4, config.pose_dim), np.float32),
              np.zeros(1, np.int64), np.zeros((1, config.n_levels, config.z_dim), np.float32))
    np.testing.assert_allclose(backend.run(*inputs), current.run(*inputs), atol=1e-4)


def test_other_weights_that_do_not_load_are_refused_as_before(copy_of):
    """The fallback loads the weights to export them: NaN weights are the ValueError of load_checkpoint (bad input),
    not graphs of the old weights and not a backend failure that `auto` would hide behind the torch backend."""
    state = load_file(str(copy_of / "model.safetensors"))
    state["audio_encoder.fc2.bias"] = torch.full_like(state["audio_encoder.fc2.bias"], float("nan"))
    save_file(state, str(copy_of / "model.safetensors"))
    with pytest.raises(ValueError, match="NaN/Inf values"):
        create_backend("auto", copy_of)


def test_damaged_or_missing_graphs_without_torch_name_the_export_command(copy_of, tmp_path):
    encode = copy_of / "encode.onnx"
    encode.write_bytes(encode.read_bytes()[:1000])  # truncated
    with pytest.raises(GraphError, match=r"encode.onnx is damaged \(truncated, 1000 of \d+ bytes"):
        checkpoint_graphs(copy_of)
    done = run_engine(copy_of, tmp_path / "out.npz", without_torch=True)
    assert done.returncode != 0
    assert "encode.onnx is damaged" in done.stderr and f"{EXPORT_COMMAND} {copy_of}" in done.stderr
    assert "torch is not installed" in done.stderr
    # a checkpoint written without graphs (older ones, converted official ones): the same advice
    described = json.loads((copy_of / "config.json").read_text())
    del described["onnx"]
    (copy_of / "config.json").write_text(json.dumps(described))
    with pytest.raises(GraphError, match=f"ships no ONNX graph encode/decode: export them with `{EXPORT_COMMAND}"):
        checkpoint_graphs(copy_of)
    assert create_backend("onnxruntime", copy_of).name == "onnxruntime"  # torch is here: exported into the cache


def test_saving_new_weights_drops_the_old_graphs(checkpoint, copy_of):
    _, model = checkpoint
    save_checkpoint(copy_of, model, Vocab.load(copy_of / "vocab.json"))
    assert not list(copy_of.glob("*.onnx"))
    assert "onnx" not in json.loads((copy_of / "config.json").read_text())
