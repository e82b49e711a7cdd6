"""The seed forms of HoRA, one bank class each: :class:`MlpBank` (``generator="mlp"``, residual or not),
:class:`EmbeddingBank` and :class:`IdentityBank`, on :class:`SeedBank`'s per-head seeds S_P of every adapted layer
of one adapter (the notation and the batched generation: :mod:`hora.tuner.generator`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from .config import HoraConfig
from .generator import _ACTIVATIONS, BankLayout, FactorBank, ModulePlan, default_embedding_dim, default_hidden


class SeedBank(FactorBank):
    """The seed forms of HoRA (``generator`` "mlp", "embedding", "identity"): per-head seeds S_P, optional head
    mixing M_P and the shared free-factor seeds A_l of ``joint_free_factor``; each form maps the (mixed) seeds
    of a projection to its scaled head factors in :meth:`project`. The layer's other factor is its own free
    parameter (LoRA's A for q/k/v, B for o), or M_l A_l with ``joint_free_factor``.

    Args:
        config: the adapter's HoraConfig.
        layout: the adapted modules' :class:`BankLayout`.
        seed_dim: the length of a seed column (d_h; k for the embedding form).
    """

    form: ClassVar[str]
    uses_generator: ClassVar[bool] = True

    def __init__(self, config: HoraConfig, layout: BankLayout, seed_dim: int) -> None:
        super().__init__()
        self.r = config.r
        self.head_dim = layout.head_dim
        self.scaling = config.scaling
        self.seed_dim = seed_dim
        self.seeds = nn.ParameterDict(
            {
                p: nn.Parameter(torch.empty(layout.counts[p], layout.heads_per_projection[p], seed_dim, config.r))
                for p in sorted(layout.counts)
            }
        )
        self.mixing = nn.ParameterDict()
        if config.head_mixing:
            for p in sorted(layout.counts):
                heads = layout.heads_per_projection[p]
                self.mixing[p] = nn.Parameter(torch.empty(layout.counts[p], heads, heads))
        self.output_heads = nn.ParameterDict()
        self.add_generator(config, layout)
        self.shared_free = (
            nn.Parameter(torch.empty(layout.shared_free, config.r, layout.free_dim)) if layout.shared_free else None
        )
        self._body_is_identity: dict[str, bool] = {}
        self.reset_parameters(config)

    @classmethod
    def build(cls, config: HoraConfig, layout: BankLayout) -> SeedBank:
        return cls(config, layout, layout.head_dim)

    def add_generator(self, config: HoraConfig, layout: BankLayout) -> None:
        """Register the form's generator parameters (none for the identity form)."""

    @torch.no_grad()
    def reset_generator(self, config: HoraConfig) -> None:
        """Initialise the form's generator parameters."""

    def random_seeds(self) -> bool:
        """Whether the seeds start random (a form whose factor is g(seed) needs them) rather than zero."""
        return False

    def set_plans(self, plans: Sequence[ModulePlan]) -> None:
        """Record which body every seed block uses (index tensors for the batched gather)."""
        bodies: dict[str, list[int]] = {p: [0] * len(s) for p, s in self.seeds.items()}
        for plan in plans:
            for slot in plan.slots:
                bodies[slot.projection][slot.index] = plan.body
        self._body_is_identity = {}
        for projection, indices in bodies.items():
            device = self.seeds[projection].device
            self.register_buffer(
                f"body_index_{projection}", torch.tensor(indices, dtype=torch.long, device=device), persistent=False
            )
            # the common case (one block of P per layer, in layer order) needs no gather, and no scatter back
            self._body_is_identity[projection] = self.uses_generator and indices == list(range(self.body.shape[0]))

    @torch.no_grad()
    def reset_parameters(self, config: HoraConfig) -> None:
        """Initialise so that dW = 0 (``init_weights=True``) or randomly (``init_weights=False``).

        Seeds 0 (the residual and identity forms: LoRA's B), or random N(0, 1/seed_dim) for a form whose factor
        is g(seed) alone, whose W2 then starts at 0. Head mixing M = I. The generator: the form's
        :meth:`reset_generator`. Shared free seeds A_l ~ Kaiming uniform (LoRA's A).
        """
        for seeds in self.seeds.values():
            if self.random_seeds() or not config.init_weights:
                nn.init.normal_(seeds, std=1.0 / math.sqrt(self.seed_dim))
            else:
                nn.init.zeros_(seeds)
        for mixing in self.mixing.values():
            mixing.copy_(torch.eye(mixing.shape[-1]).expand_as(mixing))
            if not config.init_weights:
                mixing.add_(0.1 * torch.randn_like(mixing))
        self.reset_generator(config)
        if self.shared_free is not None:
            nn.init.kaiming_uniform_(self.shared_free.view(-1, self.shared_free.shape[-1]), a=math.sqrt(5))

    def generate(self) -> dict[str, torch.Tensor]:
        """Scaled head factors of every module: projection -> s * G_P, shape (n_P, H_P, d_h, r)."""
        factors = {}
        for projection, seeds in self.seeds.items():
            if projection in self.mixing:
                seeds = torch.einsum("nhk,nkdr->nhdr", self.mixing[projection], seeds)
            factors[projection] = self.project(projection, seeds)
        return factors

    def project(self, projection: str, seeds: torch.Tensor) -> torch.Tensor:
        """The scaled head factors s * G_P (n_P, H_P, d_h, r) of projection P from its seeds (n_P, H_P, seed_dim, r)."""
        raise NotImplementedError

    def layer_factors(self, layer: nn.Module, adapter_name: str, plan: ModulePlan,
                      device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) of one HoraLayer: the generated head factor on its head-split side, the layer's own free factor
        (or M_l A_l with ``joint_free_factor``) on the other."""
        generated = self.module_factor(plan, layer.layout.side).to(device)
        if layer.layout.side == "in":
            return generated, layer.hora_B[adapter_name]
        if adapter_name in layer.hora_mix:
            return layer.hora_mix[adapter_name] @ self.shared_free[plan.shared_free].to(device), generated
        return layer.hora_A[adapter_name], generated

    def generator_parameters(self) -> list[nn.Parameter]:
        """The shared generator: W1 bodies, W2 heads and head-mixing matrices."""
        return list(self.output_heads.values()) + list(self.mixing.values())

    def parameter_counts(self) -> dict[str, int]:
        return {
            "seeds": sum(s.numel() for s in self.seeds.values()),
            "shared_free": self.shared_free.numel() if self.shared_free is not None else 0,
            "generator": self.generated_parameters(),
        }


class IdentityBank(SeedBank):
    """``generator="identity"``: the head factor is the seed itself, s * S_P: LoRA reparametrised per head (the
    control of every study)."""

    form = "identity"
    uses_generator = False

    def __init__(self, config: HoraConfig, layout: BankLayout, seed_dim: int) -> None:
        self.residual = config.residual
        super().__init__(config, layout, seed_dim)

    def project(self, projection: str, seeds: torch.Tensor) -> torch.Tensor:
        return seeds * self.scaling


class MlpBank(SeedBank):
    """``generator="mlp"``: one generator per layer (``scope="layer"``) or module acts on every seed column,
    g(s) = W2_{l,P} phi(W1_l s), and the head factor column is s + g(s) (``residual``, the default) or g(s)."""

    form = "mlp"
    can_be_residual: ClassVar[bool] = True

    def __init__(self, config: HoraConfig, layout: BankLayout, seed_dim: int) -> None:
        self.hidden = config.hidden or default_hidden(layout.head_dim)
        self.residual = config.residual and self.can_be_residual
        self.gain = float(config.generator_gain)
        self.activation = _ACTIVATIONS[config.activation]
        super().__init__(config, layout, seed_dim)

    def add_generator(self, config: HoraConfig, layout: BankLayout) -> None:
        self.body = nn.Parameter(torch.empty(layout.num_bodies, self.hidden, self.seed_dim))
        for p in sorted(layout.counts):
            self.output_heads[p] = nn.Parameter(torch.empty(layout.counts[p], layout.head_dim, self.hidden))

    def random_seeds(self) -> bool:
        return not self.residual

    @torch.no_grad()
    def reset_generator(self, config: HoraConfig) -> None:
        """W1 ~ Kaiming uniform; W2 0 (dW = 0), small with ``w2_init="small"`` in the residual form, N(0, 1/p) with
        ``init_weights=False``."""
        nn.init.kaiming_uniform_(self.body, a=math.sqrt(5))
        for head in self.output_heads.values():
            if not config.init_weights:
                nn.init.normal_(head, std=1.0 / math.sqrt(self.hidden))
            elif config.w2_init == "small" and self.residual:  # non-residual needs W2 = 0 for dW = 0
                nn.init.normal_(head, std=0.01)
            else:
                nn.init.zeros_(head)

    def project(self, projection: str, seeds: torch.Tensor) -> torch.Tensor:
        # one bmm over all n_P * H_P (layer, head) blocks per product; W1/W2 are broadcast over heads so that the
        # output comes out contiguous in (n, H, d_h, r) and every module's B is a plain view
        n, heads, seed_dim, r = seeds.shape
        body = self.body
        if not self._body_is_identity.get(projection, False):
            body = body.index_select(0, getattr(self, f"body_index_{projection}"))
        body = body.unsqueeze(1).expand(n, heads, self.hidden, seed_dim).reshape(n * heads, self.hidden, seed_dim)
        flat_seeds = seeds.reshape(n * heads, seed_dim, r)
        pre_activation = torch.bmm(body, flat_seeds)  # (n H, p, r)
        hidden = self.activation(pre_activation * self.gain if self.gain != 1.0 else pre_activation)
        output_head = self.output_heads[projection].unsqueeze(1).expand(n, heads, self.head_dim, self.hidden)
        output_head = output_head.reshape(n * heads, self.head_dim, self.hidden)
        if self.residual:  # s * (S + W2 hidden) in one product
            generated = torch.baddbmm(flat_seeds, output_head, hidden, beta=self.scaling, alpha=self.scaling)
        else:
            generated = torch.bmm(output_head, hidden) * self.scaling
        return generated.view(n, heads, self.head_dim, r)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [self.body, *super().generator_parameters()]


class EmbeddingBank(MlpBank):
    """``generator="embedding"``: the mlp generator on k-dimensional per-head embeddings (k = ``embedding_dim``,
    default max(2, d_h // 8)) instead of d_h-dimensional seeds; the head factor is g(embedding), never residual."""

    form = "embedding"
    can_be_residual = False

    @classmethod
    def build(cls, config: HoraConfig, layout: BankLayout) -> EmbeddingBank:
        return cls(config, layout, config.embedding_dim or default_embedding_dim(layout.head_dim))
