"""One runtime interface: checkpoints in PyTorch, ONNX files in onnxruntime, and every bad input refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper

from compress.cli import main
from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.runtime import (OrtPredictor, TorchPredictor, artifact_precision, load_predictor, resolve_providers,
                              tensorrt_options)

HAS_CUDA_EP = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _pool_model(path: Path, shape: list, out_rank: int = 4) -> Path:
    """A one-op ONNX "pose net": 4×4 average pooling of the image (3 'joints'); optional 5-D output."""
    nodes = [helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4])]
    if out_rank == 5:
        nodes.append(helper.make_node("Unsqueeze", ["pooled", "axis"], ["heatmaps"]))
    else:
        nodes.append(helper.make_node("Identity", ["pooled"], ["heatmaps"]))
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [1])
    out_shape = [shape[0], 3] + [d // 4 if isinstance(d, int) else d for d in shape[2:]]
    out_shape = out_shape[:1] + [1] + out_shape[1:] if out_rank == 5 else out_shape
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, out_shape)], [axis])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def _images(batch: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(batch).random((batch, 3, size, size), dtype=np.float32)


def test_checkpoint_runs_in_torch(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    model = StackedHourglass(tiny_config).eval()
    checkpoint.save(model, tmp_path / "m.pt")
    predict = load_predictor(str(tmp_path / "m.pt"), threads=1)
    assert isinstance(predict, TorchPredictor) and predict.runtime == "torch" and predict.threads == 1
    out = predict(_images(2))
    with torch.no_grad():
        expected = model(torch.from_numpy(_images(2)))[:, -1].numpy()
    assert out.shape == (2, 16, 8, 8) and np.allclose(out, expected, atol=1e-6)


def test_fixed_batch_onnx_runs_any_batch_in_chunks(tmp_path: Path) -> None:
    predict = load_predictor(str(_pool_model(tmp_path / "fixed.onnx", [1, 3, 32, 32], out_rank=5)), threads=1)
    assert isinstance(predict, OrtPredictor) and predict.batch == 1 and predict.input_size == 32
    assert predict.provider == "CPUExecutionProvider" and predict.threads == 1
    images = _images(3)
    expected = images.reshape(3, 3, 8, 4, 8, 4).mean(axis=(3, 5))
    assert np.allclose(predict(images), expected, atol=1e-6)
    pairs = load_predictor(str(_pool_model(tmp_path / "two.onnx", [2, 3, 32, 32])))
    assert pairs.batch == 2 and np.allclose(pairs(images), expected, atol=1e-6)  # last chunk padded


def test_dynamic_onnx_takes_its_input_size_from_the_graph(tmp_path: Path) -> None:
    predict = load_predictor(str(_pool_model(tmp_path / "dyn.onnx", ["batch", 3, 32, 32])))
    assert predict.batch is None and predict.input_size == 32 and predict(_images(2)).shape == (2, 3, 8, 8)


def test_symbolic_size_without_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HGCError, match="input size is dynamic"):
        load_predictor(str(_pool_model(tmp_path / "sym.onnx", ["batch", 3, "h", "w"])))


def test_wrong_input_rank_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rank3.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "r3",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32])])
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                       ir_version=8).SerializeToString())
    with pytest.raises(HGCError, match=r"rank3\.onnx: input 'x' has rank 3"):
        load_predictor(str(path))


def test_non_onnx_and_unknown_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a model\n")
    with pytest.raises(HGCError, match=r"bad\.onnx: onnxruntime cannot load it"):
        load_predictor(str(bad))
    other = tmp_path / "model.bin"
    other.write_bytes(b"\x00")
    with pytest.raises(HGCError, match="unknown model file type"):
        load_predictor(str(other))
    with pytest.raises(HGCError, match="no such model file"):
        load_predictor(str(tmp_path / "absent.onnx"))


def test_missing_provider_lists_the_available_ones(tmp_path: Path) -> None:
    path = str(_pool_model(tmp_path / "m.onnx", [1, 3, 32, 32]))
    with pytest.raises(HGCError) as info:
        load_predictor(path, provider="NoSuchExecutionProvider")
    assert "available: " in str(info.value)
    assert all(name in str(info.value) for name in onnxruntime.get_available_providers())
    if not HAS_CUDA_EP:
        with pytest.raises(HGCError, match="CUDAExecutionProvider"):
            resolve_providers("cuda", "cpu")


def test_options_that_do_not_apply_are_refused(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    checkpoint.save(StackedHourglass(tiny_config), tmp_path / "m.pt")
    with pytest.raises(HGCError, match="--provider applies to ONNX"):
        load_predictor(str(tmp_path / "m.pt"), provider="cpu")
    with pytest.raises(HGCError, match="--compile applies to checkpoints"):
        load_predictor(str(_pool_model(tmp_path / "m.onnx", [1, 3, 32, 32])), compile=True)
    with pytest.raises(HGCError, match="expected cpu, cuda"):
        load_predictor(str(tmp_path / "m.onnx"), device="tpu")


@pytest.mark.parametrize("argv, message", [
    (["eval", "{bad}", "--limit", "2"], "onnxruntime cannot load it"),
    (["bench", "{good}", "--provider", "NoSuchExecutionProvider"], "available: "),
    (["bench", "{rank3}"], "has rank 3"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list,
                                          message: str) -> None:
    (tmp_path / "bad.onnx").write_text("not onnx")
    _pool_model(tmp_path / "good.onnx", [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "r3",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32])])
    (tmp_path / "rank3.onnx").write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString())
    files = {"bad": tmp_path / "bad.onnx", "good": tmp_path / "good.onnx", "rank3": tmp_path / "rank3.onnx"}
    code = main([arg.format(**files) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_checkpoint_on_cuda_matches_cpu(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    checkpoint.save(StackedHourglass(tiny_config), tmp_path / "m.pt")
    cpu, gpu = load_predictor(str(tmp_path / "m.pt")), load_predictor(str(tmp_path / "m.pt"), device="cuda")
    assert gpu.provider == "cuda" and np.allclose(cpu(_images(2)), gpu(_images(2)), atol=1e-3)


@pytest.mark.skipif(not HAS_CUDA_EP, reason="needs onnxruntime-gpu with a CUDA GPU")
def test_onnx_on_cuda_provider(tmp_path: Path) -> None:
    path = str(_pool_model(tmp_path / "m.onnx", [1, 3, 32, 32]))
    gpu = load_predictor(path, device="cuda")
    assert gpu.provider == "CUDAExecutionProvider"
    assert np.allclose(gpu(_images(2)), load_predictor(path)(_images(2)), atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_request_on_a_cpu_machine_is_refused(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    checkpoint.save(StackedHourglass(tiny_config), tmp_path / "m.pt")
    with pytest.raises(HGCError, match="CUDA is not available"):
        load_predictor(str(tmp_path / "m.pt"), device="cuda")


@pytest.mark.slow
def test_torch_compile_matches_eager(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    checkpoint.save(StackedHourglass(tiny_config), tmp_path / "m.pt")
    eager, compiled = load_predictor(str(tmp_path / "m.pt")), load_predictor(str(tmp_path / "m.pt"), compile=True)
    assert compiled.runtime == "torch.compile"
    assert np.allclose(eager(_images(2)), compiled(_images(2)), atol=1e-4)


@pytest.mark.parametrize("precision, fp16, int8", [("int8", True, True), ("fp16", True, False), (None, False, False)])
def test_tensorrt_flags_follow_the_artifact_precision(precision, fp16, int8) -> None:
    assert tensorrt_options(precision) == {"trt_fp16_enable": fp16, "trt_int8_enable": int8}


def test_artifact_precision_reads_the_quantization_entry(tmp_path) -> None:
    import onnx

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    plain = helper.make_model(graph)
    onnx.save_model(plain, str(tmp_path / "float.onnx"))
    helper.set_model_props(plain, {"hgc.quantization": json.dumps({"precision": "int8"})})
    onnx.save_model(plain, str(tmp_path / "int8.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert artifact_precision(str(tmp_path / "int8.onnx")) == "int8"
    assert artifact_precision(str(tmp_path / "float.onnx")) is None
    assert artifact_precision(str(tmp_path / "junk.onnx")) is None
