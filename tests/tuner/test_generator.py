"""The bank's batched generation: the formula, per-head structure, initialisation, scope."""

from __future__ import annotations

import peft
import pytest
import torch
from torch.nn import functional as F

from hora import HoraConfig, HoraLayer
from tiny_models import make_inputs, make_model


def build(kind: str = "llama_gqa", **overrides) -> peft.PeftModel:
    settings = dict(r=3, projections=["q", "k", "v", "o"], init_weights=False, hidden=5)
    settings.update(overrides)
    torch.manual_seed(0)
    return peft.get_peft_model(make_model(kind), HoraConfig(**settings))


def layers(model):
    return [(n, m) for n, m in model.base_model.model.named_modules() if isinstance(m, HoraLayer)]


@pytest.mark.parametrize("residual", [True, False])
def test_batched_generation_matches_per_head_formula(residual):
    """G[h][:, c] = s * (S^h[:, c] (residual) + W2_{l,P} gelu(W1_l S^h[:, c])), head by head."""
    model = build(residual=residual)
    bank = model.base_model.hora_bank["default"]
    with torch.no_grad():
        generated = bank.generate()
        for name, layer in layers(model):
            plan = layer.hora_plans["default"]
            for slot in plan.slots:
                seeds = bank.seeds[slot.projection][slot.index]
                w1 = bank.body[plan.body]
                w2 = bank.output_heads[slot.projection][slot.index]
                for head in range(slot.num_heads):
                    for column in range(bank.r):
                        s = seeds[head, :, column]
                        expected = w2 @ F.gelu(w1 @ s) + (s if residual else 0)
                        got = generated[slot.projection][slot.index][head, :, column]
                        assert torch.allclose(got, expected * bank.scaling, atol=1e-6), name


def test_scope_layer_shares_one_body_per_layer_and_module_scope_one_per_module():
    layer_scoped = build(scope="layer")
    plans = {n: m.hora_plans["default"] for n, m in layers(layer_scoped)}
    assert layer_scoped.base_model.hora_bank["default"].body.shape[0] == 2  # two decoder layers
    assert plans["model.layers.0.self_attn.q_proj"].body == plans["model.layers.0.self_attn.o_proj"].body
    assert plans["model.layers.0.self_attn.q_proj"].body != plans["model.layers.1.self_attn.q_proj"].body
    module_scoped = build(scope="module")
    assert module_scoped.base_model.hora_bank["default"].body.shape[0] == 8


def head_rows(layer: HoraLayer, delta: torch.Tensor, head: int) -> torch.Tensor:
    d_h = layer.layout.head_dim
    block = slice(head * d_h, (head + 1) * d_h)
    return delta[block, :] if layer.layout.side == "out" else delta[:, block]


@pytest.mark.parametrize("projection", ["q", "o"])
def test_identity_generator_seed_of_one_head_changes_only_that_head(projection):
    model = build(generator="identity")
    bank = model.base_model.hora_bank["default"]
    name = f"model.layers.0.self_attn.{projection}_proj"
    layer = dict(layers(model))[name]
    (slot,) = layer.hora_plans["default"].slots
    before = layer.get_delta_weight("default").detach().clone()
    with torch.no_grad():
        bank.seeds[slot.projection][slot.index, 2].add_(1.0)
    after = layer.get_delta_weight("default").detach()
    for head in range(slot.num_heads):
        changed = not torch.allclose(head_rows(layer, after, head), head_rows(layer, before, head))
        assert changed == (head == 2)


def test_mlp_generator_shared_body_changes_every_head_of_every_projection():
    model = build()
    bank = model.base_model.hora_bank["default"]
    named = dict(layers(model))
    names = [f"model.layers.0.self_attn.{p}_proj" for p in "qkvo"]
    before = {n: named[n].get_delta_weight("default").detach().clone() for n in names}
    with torch.no_grad():
        bank.body[0].add_(0.5 * torch.randn_like(bank.body[0]))
    for n in names:
        after = named[n].get_delta_weight("default").detach()
        layer = named[n]
        for head in range(layer.layout.num_heads):
            assert not torch.allclose(head_rows(layer, after, head), head_rows(layer, before[n], head)), (n, head)
    untouched = named["model.layers.1.self_attn.q_proj"]
    assert untouched.hora_plans["default"].body == 1


@pytest.mark.parametrize("residual,w2_init", [(True, "zero"), (True, "small"), (False, "zero")])
def test_initialisation_keeps_the_update_zero(residual, w2_init):
    model = build(residual=residual, w2_init=w2_init, init_weights=True)
    bank = model.base_model.hora_bank["default"]
    for _, layer in layers(model):
        assert torch.count_nonzero(layer.get_delta_weight("default")) == 0
    seeds_zero = all(torch.count_nonzero(s) == 0 for s in bank.seeds.values())
    assert seeds_zero == residual
    heads_zero = all(torch.count_nonzero(w) == 0 for w in bank.output_heads.values())
    assert heads_zero == (w2_init == "zero")


@pytest.mark.parametrize("activation", ["gelu", "relu", "tanh", "silu", "identity"])
def test_every_activation_generates_finite_head_factors(activation):
    bank = build(activation=activation).base_model.hora_bank["default"]
    assert all(torch.isfinite(g).all() for g in bank.generate().values())


def test_width_default_and_override():
    assert build(hidden=None).base_model.hora_bank["default"].hidden == 4  # max(4, d_h // 4) with d_h 8
    assert build(hidden=7).base_model.hora_bank["default"].body.shape[1:] == (7, 8)


def test_joint_free_factor_shares_one_seed_per_layer():
    model = build(joint_free_factor=True)
    bank = model.base_model.hora_bank["default"]
    assert bank.shared_free.shape == (2, 3, 32)
    named = dict(layers(model))
    q, v = named["model.layers.0.self_attn.q_proj"], named["model.layers.0.self_attn.v_proj"]
    assert "default" in q.hora_mix and "default" not in q.hora_A
    assert q.hora_plans["default"].shared_free == v.hora_plans["default"].shared_free
    fresh = build(joint_free_factor=True, init_weights=True)
    mix = dict(layers(fresh))["model.layers.0.self_attn.q_proj"].hora_mix["default"]
    assert torch.equal(mix, torch.eye(3))


def test_embedding_generator_formula_parameters_and_zero_init():
    model = build(generator="embedding", embedding_dim=2, hidden=5)
    bank = model.base_model.hora_bank["default"]
    assert bank.seeds["q"].shape == (2, 4, 2, 3) and bank.body.shape == (2, 5, 2)
    with torch.no_grad():
        generated = bank.generate()
        z = bank.seeds["q"][1, 3, :, 0]
        expected = bank.output_heads["q"][1] @ F.gelu(bank.body[1] @ z)
        assert torch.allclose(generated["q"][1, 3, :, 0], expected * bank.scaling, atol=1e-6)
    fresh = build(generator="embedding", init_weights=True)
    assert all(torch.count_nonzero(m.get_delta_weight("default")) == 0 for _, m in layers(fresh))
    seeds = fresh.base_model.hora_bank["default"].seeds["q"]
    assert torch.count_nonzero(seeds) == seeds.numel()  # random embeddings, zero W2


def test_head_mixing_starts_as_identity_and_couples_heads():
    plain, mixed = build(), build(head_mixing=True, init_weights=True)
    bank = mixed.base_model.hora_bank["default"]
    assert torch.equal(bank.mixing["q"][0], torch.eye(4))
    with torch.no_grad():
        reference = plain.base_model.hora_bank["default"]
        for name in ("seeds", "output_heads"):
            for p, value in getattr(reference, name).items():
                getattr(bank, name)[p].copy_(value)
        bank.body.copy_(reference.body)
        assert all(torch.allclose(bank.generate()[p], g) for p, g in reference.generate().items())
        bank.mixing["q"][0, 1, 2] = 1.0  # head 1 now reads head 2's seed as well
        before = bank.generate()["q"][0].clone()
        bank.seeds["q"][0, 2].add_(1.0)
        after = bank.generate()["q"][0]
    assert not torch.allclose(after[1], before[1]) and torch.allclose(after[0], before[0])


def test_gain_scales_the_pre_activation():
    model = build(generator_gain=3.0, activation="tanh")
    bank = model.base_model.hora_bank["default"]
    with torch.no_grad():
        s = bank.seeds["v"][0, 1, :, 2]
        expected = s + bank.output_heads["v"][0] @ torch.tanh(3.0 * (bank.body[0] @ s))
        assert torch.allclose(bank.generate()["v"][0, 1, :, 2], expected * bank.scaling, atol=1e-6)


def test_forward_hooks_on_the_bank_see_each_generation_and_not_the_cache():
    """The bank generates through its module call, so torch's forward hooks observe every generation."""
    model = build()
    bank = model.base_model.hora_bank["default"]
    inputs = make_inputs("llama_gqa")
    seen = []
    handles = (bank.register_forward_pre_hook(lambda module, args: seen.append("pre")),
               bank.register_forward_hook(lambda module, args, output: seen.append(sorted(output))))
    model.train()
    model(**inputs).logits.pow(2).mean().backward()
    assert seen == ["pre", ["k", "o", "q", "v"]]  # one generation per training forward
    model.eval()
    with torch.no_grad():
        for _ in range(3):
            model(**inputs)
    assert len(seen) == 4  # generated once, then served from the cache
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        bank.seeds["q"].add_(1.0)
        model(**inputs)
    assert len(seen) == 4
