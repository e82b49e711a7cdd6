"""On a CUDA GPU (marked ``gpu``; skipped without CUDA): HoRA gives the CPU's outputs on every head layout and
generator, keeps every tensor on the device, trains with finite gradients, stays exact after autocast, saves on
the GPU and loads on the CPU, compiles, and follows its layers across devices (``nn.DataParallel`` with two or
more GPUs, a model split between the GPU and the CPU).

Run them with ``pytest -m gpu`` (or ``benchmarks/gpu_check.py``, which runs them among its checks).
"""

from __future__ import annotations

import copy

import peft
import pytest
import torch

import mha_like
from hora import HoraConfig, HoraLayer, export_lora
from hora.export import lora_state_dict
from tiny_models import ARCHITECTURES, GENERATOR_FORMS, hora_model, make_inputs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")
MHA_KINDS = ["torchvision_vit", "openclip_text"]
TOLERANCE = 1e-4  # float32 on both devices; the GPU sums in another order


@pytest.fixture(autouse=True)
def _exact_float32():
    """float32 products in full precision on the GPU (no TF32), so CPU and GPU agree to rounding."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def on(device: torch.device | str, inputs):
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    return {key: value.to(device) for key, value in inputs.items()}


def outputs(model: torch.nn.Module, inputs) -> torch.Tensor:
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(on(device, inputs)) if isinstance(inputs, torch.Tensor) else model(**on(device, inputs))
    return (out.logits if hasattr(out, "logits") else out).float().cpu()


def timm_vit() -> torch.nn.Module:
    import timm_like

    timm, _ = timm_like.import_timm()
    return (timm_like.real_timm_vit(timm) if timm is not None else timm_like.TinyViT()).eval()


def adapted(kind: str, generator: str) -> tuple[torch.nn.Module, object]:
    """(HoRA model with a random adapter on all of q, k, v, o, its inputs) for every layout, on the CPU."""
    if kind in MHA_KINDS:
        torch.manual_seed(0)
        config = HoraConfig(r=2, alpha=4, projections=["q", "k", "v", "o"], init_weights=False, generator=generator)
        return peft.get_peft_model(mha_like.make(kind), config), mha_like.inputs(kind)
    if kind == "timm_vit":
        torch.manual_seed(0)
        config = HoraConfig(r=2, alpha=4, projections=["q", "k", "v", "o"], init_weights=False, generator=generator)
        images = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        return peft.get_peft_model(timm_vit(), config), images
    return hora_model(kind, generator=generator), make_inputs(kind)


LAYOUTS = [*ARCHITECTURES, "timm_vit", *MHA_KINDS]


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_cuda_gives_the_cpu_outputs_and_keeps_every_tensor_on_the_device(kind, generator):
    model, inputs = adapted(kind, generator)
    expected = outputs(model, inputs)
    model.to(CUDA)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(b.device.type == "cuda" for b in model.buffers())
    assert torch.allclose(outputs(model, inputs), expected, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", ["bert", "llama_gqa", "gpt2_conv1d"])
def test_training_on_cuda_gives_finite_gradients_to_every_adapter_tensor(kind, generator):
    model, inputs = adapted(kind, generator)
    model.to(CUDA).train()
    model(**on(CUDA, inputs)).logits.float().pow(2).mean().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("generator", GENERATOR_FORMS)
def test_autocast_on_cuda_then_merge_and_export_are_exact(generator, dtype, tmp_path):
    untouched, inputs = adapted("llama_gqa", generator)
    untouched.to(CUDA)
    model = copy.deepcopy(untouched)
    with torch.autocast("cuda", dtype=dtype):
        assert torch.isfinite(outputs(model, inputs)).all()
    expected = outputs(untouched, inputs)
    assert torch.allclose(outputs(model, inputs), expected, atol=TOLERANCE)
    exported, reference = lora_state_dict(model), lora_state_dict(untouched)
    assert all(t.dtype == torch.float32 and torch.equal(t, reference[k]) for k, t in exported.items())
    export_lora(model, tmp_path / "lora")
    model.merge_adapter()
    assert torch.allclose(outputs(model, inputs), expected, atol=TOLERANCE)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
def test_saved_on_cuda_loads_on_the_cpu(generator, tmp_path):
    from tiny_models import make_model

    model, inputs = adapted("llama_gqa", generator)
    model.to(CUDA)
    expected = outputs(model, inputs)
    model.save_pretrained(tmp_path)
    loaded = peft.PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path)
    assert next(loaded.parameters()).device.type == "cpu"
    assert torch.allclose(outputs(loaded, inputs), expected, atol=TOLERANCE)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
def test_one_compiled_training_step_equals_eager(generator):
    eager, inputs = adapted("llama_gqa", generator)
    eager.to(CUDA).train()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model)
    inputs = on(CUDA, inputs)
    for run in (eager, compiled):
        run(**inputs).logits.float().pow(2).mean().backward()
    eager_grads = {n: p.grad for n, p in eager.named_parameters() if p.requires_grad}
    for name, p in compiled_model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, eager_grads[name], atol=1e-4, rtol=1e-3), name


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
def test_a_model_dispatched_over_gpu_and_cpu_follows_its_layers(generator):
    """A device map (accelerate's ``dispatch_model``, what ``device_map=`` does) with the banks and the first
    layer on the GPU and the last layer on the CPU: the factors follow their layers; outputs and gradients as
    on one device."""
    from accelerate import dispatch_model

    model, inputs = adapted("llama_gqa", generator)
    expected = outputs(model, inputs)
    device_map = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.layers.0": 0, "hora": 0,
                  "model.layers.1": "cpu", "model.norm": "cpu", "lm_head": "cpu"}
    dispatch_model(model.base_model.model, device_map=device_map)
    assert model.base_model.model.model.layers[1].self_attn.q_proj.hora_A["default"].device.type == "cpu"
    assert torch.allclose(outputs(model, inputs), expected, atol=TOLERANCE, rtol=TOLERANCE)
    model.train()
    model(**on(CUDA, inputs)).logits.float().pow(2).mean().backward()
    bank = model.base_model.hora_bank["default"]
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in bank.parameters())


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
@pytest.mark.parametrize("generator", GENERATOR_FORMS)
def test_data_parallel_over_two_gpus_equals_one(generator):
    model, inputs = adapted("bert", generator)
    model.to(CUDA)
    expected = outputs(model, make_inputs("bert", batch=4))
    parallel = torch.nn.DataParallel(model, device_ids=[0, 1])
    with torch.no_grad():
        got = parallel(**on(CUDA, make_inputs("bert", batch=4))).logits.float().cpu()
    assert torch.allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE)
    parallel.train()
    parallel(**on(CUDA, make_inputs("bert", batch=4))).logits.pow(2).mean().backward()
    bank = model.base_model.hora_bank["default"]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in bank.parameters())


def test_every_hora_layer_reads_a_bank_on_its_own_device():
    model, _ = adapted("llama_gqa", "mlp")
    model.to(CUDA)
    layers = [m for m in model.modules() if isinstance(m, HoraLayer)]
    assert layers and all(t.device.type == "cuda" for layer in layers for t in layer.factors("default", CUDA))
