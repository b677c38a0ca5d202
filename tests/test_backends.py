"""Backends: parity with the eager model (onnxruntime within 1e-4 on CPU), the ONNX export, fallback and errors.

The TensorRT tests run only where tensorrt and a CUDA GPU exist (a Jetson or a desktop GPU) and skip
cleanly elsewhere.
"""
import numpy as np
import pytest
import torch

from ha2g_model.backends import BackendError, create_backend, model_hash
from ha2g_model.config import HA2GConfig
from ha2g_model.model import HA2G


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model(preset, seed=0):
    torch.manual_seed(seed)
    model = HA2G(HA2GConfig.preset(preset)).eval()
    # random BN statistics, so the parity checks also cover the folded normalisation
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return model


def window_inputs(config, batch, seed=0, noise=True):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-80, 0, (batch, config.n_mels, config.spec_cols)).astype(np.float32),
            rng.integers(0, config.n_words, (batch, config.n_poses)),
            (0.2 * rng.standard_normal((batch, config.n_pre_poses, config.pose_dim))).astype(np.float32),
            rng.integers(0, config.n_speakers, batch),
            (rng.standard_normal((batch, config.n_levels, config.z_dim)) if noise else
             np.zeros((batch, config.n_levels, config.z_dim))).astype(np.float32))


def eager(model, spec, words, seed, speaker, noise):
    with torch.inference_mode():
        return model.generate_window(torch.as_tensor(spec), torch.as_tensor(words), torch.as_tensor(seed),
                                     torch.as_tensor(speaker), torch.as_tensor(noise)).numpy()


@pytest.fixture(scope="module", params=["tiny_gesture", "tiny_expressive"])
def model(request):
    return make_model(request.param)


def test_torch_backend_is_the_model(model):
    backend = create_backend("torch", model)
    inputs = window_inputs(model.config, 2)
    out = backend.run(*inputs)
    assert out.shape == (2, 34, model.config.pose_dim) and out.dtype == np.float32
    np.testing.assert_array_equal(out, eager(model, *inputs))


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_encode_then_decode_is_the_window(tmp_path, model, name):
    """The whole-utterance split: encode (the seed-independent encoders, any batch) then decode (the level chain,
    batch 1) gives generate_window's poses."""
    pytest.importorskip(name)
    backend = create_backend(name, model, **({"cache_dir": tmp_path} if name == "onnxruntime" else {}))
    spec, words, seed, speaker, noise = window_inputs(model.config, 3)
    blends, texts = backend.encode(spec, words, speaker)
    assert blends.shape == texts.shape == (3, model.config.n_levels, 34, model.config.feat_dim)
    reference = eager(model, spec, words, seed, speaker, noise)
    for i in range(3):
        out = backend.decode(blends[i:i + 1], texts[i:i + 1], seed[i:i + 1], speaker[i:i + 1], noise[i:i + 1])
        np.testing.assert_allclose(out[0], reference[i], atol=1e-4 if name == "onnxruntime" else 1e-6)


def test_zero_noise_is_the_deterministic_style(model):
    inputs = window_inputs(model.config, 1, noise=False)
    with torch.inference_mode():
        mu = model.generate_window(*(torch.as_tensor(x) for x in inputs[:4]), noise=None).numpy()
    np.testing.assert_allclose(create_backend("torch", model).run(*inputs), mu, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch(tmp_path, model, batch):
    pytest.importorskip("onnxruntime")
    backend = create_backend("onnxruntime", model, cache_dir=tmp_path)
    for seed in range(2):
        inputs = window_inputs(model.config, batch, seed)
        np.testing.assert_allclose(backend.run(*inputs), eager(model, *inputs), atol=1e-4)
    parts = sorted(p.name.split("_", 2)[2] for p in tmp_path.glob("*.onnx"))
    assert parts == ["decode_dynamic.onnx", "encode_dynamic.onnx"]  # the convolutions and the GRU chain
    assert backend._encoder.get_session_options().intra_op_num_threads == 1  # one thread per session by default
    assert backend._decoder.get_session_options().intra_op_num_threads == 1


def test_onnxruntime_fails_a_window_with_nan_features_like_torch(tmp_path):
    """ONNX Runtime's GRU turns NaN inputs into finite values: without the backend's check, a style whose weights
    went NaN would produce plausible garbage instead of a failing window."""
    pytest.importorskip("onnxruntime")
    model = make_model("tiny_expressive")
    with torch.no_grad():
        model.audio_encoder.speaker_embedding[0].weight[1] = float("nan")
    backend = create_backend("onnxruntime", model, cache_dir=tmp_path)
    spec, words, seed, _, noise = window_inputs(model.config, 1)
    assert np.isfinite(backend.run(spec, words, seed, np.array([0]), noise)).all()
    assert np.isnan(eager(model, spec, words, seed, np.array([1]), noise)).all()
    with pytest.raises(BackendError, match="NaN or Inf features"):
        backend.run(spec, words, seed, np.array([1]), noise)


def test_onnx_export_is_valid_and_cached(tmp_path, model):
    onnx = pytest.importorskip("onnx")
    from ha2g_model.backends.onnx_backend import GRAPH_IO
    from ha2g_model.onnx_export import cached_onnx, export_onnx

    for part, (inputs, outputs) in GRAPH_IO.items():
        graph = onnx.load(str(export_onnx(model, tmp_path / f"{part}.onnx", part)))
        onnx.checker.check_model(graph)
        assert [i.name for i in graph.graph.input] == list(inputs)
        assert [o.name for o in graph.graph.output] == list(outputs)
        assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert any(node.op_type == "GRU" for node in graph.graph.node) == (part == "decode")
        # one word table, looked up once, however many text encoders read it
        assert sum(node.op_type == "Gather" and "word_embeddings" in node.input[0] for node in graph.graph.node) \
            == (part == "encode")
    first = cached_onnx(model, "decode", tmp_path / "cache")
    mtime = first.stat().st_mtime_ns
    assert cached_onnx(model, "decode", tmp_path / "cache") == first and first.stat().st_mtime_ns == mtime
    assert model_hash(model) in first.name


def test_model_hash_follows_the_weights():
    a, b = make_model("tiny_gesture", seed=0), make_model("tiny_gesture", seed=0)
    assert model_hash(a) == model_hash(b)
    with torch.no_grad():
        b.generator.levels[0].out[0].bias[0] += 1e-3
    assert model_hash(a) != model_hash(b)


def test_fallback_list_skips_backends_that_cannot_load(model):
    # On a machine without tensorrt or a GPU the first entry fails for real and the next one is used.
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here: the fallback from it cannot be shown on CPU this way")
    except ImportError:
        pass
    backend = create_backend(["tensorrt", "torch"], model, threads=1)  # each backend takes the options it knows
    assert backend.name == "torch"
    with pytest.raises(BackendError, match="tensorrt"):
        create_backend(["tensorrt"], model)


def test_auto_picks_a_working_backend(tmp_path, model):
    backend = create_backend("auto", model, cache_dir=tmp_path)
    assert backend.name in ("onnxruntime", "torch")
    inputs = window_inputs(model.config, 1)
    np.testing.assert_allclose(backend.run(*inputs), eager(model, *inputs), atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="these errors are about a machine without CUDA")
def test_clear_errors_without_cuda(model):
    with pytest.raises(BackendError, match="fp16 needs a CUDA device"):
        create_backend("torch", model, precision="fp16")
    with pytest.raises(BackendError, match="CUDA is not available"):
        create_backend("torch", model, device="cuda")
    with pytest.raises(BackendError, match="no backend could be loaded") as error:
        create_backend(["torch", "onnxruntime"], model, device="cuda")
    assert "torch:" in str(error.value) and "onnxruntime:" in str(error.value)


def test_bad_names_and_options(model):
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        create_backend("tensorflow", model)
    with pytest.raises(ValueError, match="unknown backend option"):
        create_backend("torch", model, cache_dri="/tmp")
    with pytest.raises(ValueError, match="precision"):
        create_backend("torch", model, precision="int4")
    with pytest.raises(TypeError, match="HA2G model or a checkpoint"):
        create_backend("torch", object())


def test_backend_from_checkpoint_directory(tmp_path, model):
    from ha2g_model.checkpoint import save_checkpoint
    from ha2g_model.text import Vocab

    save_checkpoint(tmp_path, model, Vocab([f"w{i}" for i in range(model.config.n_words - 4)]))
    inputs = window_inputs(model.config, 1)
    np.testing.assert_array_equal(create_backend("torch", tmp_path).run(*inputs), eager(model, *inputs))


# --- torch on CUDA (GPU machines only) -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return "cuda"


@pytest.mark.gpu
@pytest.mark.parametrize("precision, cuda_graph, tolerance", [("fp32", False, 1e-3), ("fp32", True, 1e-3),
                                                              ("fp16", False, 3e-2), ("fp16", True, 3e-2)])
def test_torch_cuda_matches_the_cpu_model(cuda, precision, cuda_graph, tolerance):
    """cuDNN's GRUs in fp32 / fp16, eagerly or replayed from the batch-1 CUDA graph, against the CPU model: batch 1
    twice (a replay must read each call's new inputs) and batch 3 (runs eagerly beside the graph)."""
    model = make_model("tiny_expressive")
    backend = create_backend("torch", model, device=cuda, precision=precision, cuda_graph=cuda_graph)
    assert next(model.parameters()).device.type == "cpu"  # the caller's module stays where it was
    for batch, seed in ((1, 0), (1, 1), (3, 2)):
        inputs = window_inputs(model.config, batch, seed=seed)
        out, reference = backend.run(*inputs), eager(model, *inputs)
        assert out.shape == reference.shape and out.dtype == np.float32
        difference = float(np.abs(out - reference).max())
        assert difference < tolerance, f"batch {batch}: max |CUDA {precision} - CPU fp32| = {difference:.2e}"


@pytest.mark.gpu
def test_cuda_graph_replay_is_the_eager_cuda_window(cuda):
    model = make_model("tiny_expressive")
    graphed = create_backend("torch", model, device=cuda, precision="fp16", cuda_graph=True)
    plain = create_backend("torch", model, device=cuda, precision="fp16")
    for seed in range(3):
        inputs = window_inputs(model.config, 1, seed=seed)
        np.testing.assert_allclose(graphed.run(*inputs), plain.run(*inputs), atol=2e-3)


# --- TensorRT (GPU machines only) ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpu(cuda):
    pytest.importorskip("tensorrt")
    return cuda


@pytest.mark.gpu
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("fp16", 3e-2)])
def test_tensorrt_matches_torch(tmp_path_factory, gpu, precision, tolerance):
    model = make_model("tiny_expressive")
    cache = tmp_path_factory.mktemp(f"trt_{precision}")
    backend = create_backend("tensorrt", model, device=gpu, precision=precision, cache_dir=cache, max_batch=4)
    for batch in (1, 4):
        inputs = window_inputs(model.config, batch)
        np.testing.assert_allclose(backend.run(*inputs), eager(model, *inputs), atol=tolerance)
    engines = sorted(cache.glob("*.engine"))
    assert len(engines) == 2 and all(precision in e.name for e in engines)  # encode and decode
    mtimes = [e.stat().st_mtime_ns for e in engines]
    again = create_backend("tensorrt", model, device=gpu, precision=precision, cache_dir=cache, max_batch=4)
    assert [e.stat().st_mtime_ns for e in engines] == mtimes  # loaded from the cache, not rebuilt
    inputs = window_inputs(model.config, 2)
    np.testing.assert_allclose(again.run(*inputs), backend.run(*inputs), atol=1e-6)


@pytest.mark.gpu
def test_tensorrt_bad_engine_file_is_a_clear_error(tmp_path, gpu):
    model = make_model("tiny_expressive")
    create_backend("tensorrt", model, device=gpu, cache_dir=tmp_path, max_batch=1)
    for engine in tmp_path.glob("*.engine"):
        engine.write_bytes(b"not an engine")
    with pytest.raises(BackendError, match="could not load the engine file"):
        create_backend("tensorrt", model, device=gpu, cache_dir=tmp_path, max_batch=1)
    backend = create_backend(["tensorrt", "torch"], model, device=gpu, cache_dir=tmp_path, max_batch=1)
    assert backend.name == "torch"
