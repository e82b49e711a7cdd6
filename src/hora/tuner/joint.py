"""The joint bank (``generator="joint"``): both low-rank factors of every adapted projection of a layer are
the output of two small hypernetworks shared by all heads and all projections of that layer.

Our reconstruction of the paper's joint form (docs/method.md). Layer l has H per-head seeds B_{l,h}
(d_h x r each), one shared free seed Abar_l (r x d), and two generators, each a bias-free MLP with a body
shared by the whole layer and one output head per adapted slot (projection section or module):

    head factor   F_{l,P,h} = W2B_{l,P} phi(W1B_l B_{l,h})      W1B_l: p x d_h,  W2B_{l,P}: d_h x p
    free factor   A_{l,m}   = W2A_{l,m} phi(W1A_l Abar_l)       W1A_l: p x r,    W2A_{l,m}: r x p

phi acts elementwise, so every column of a seed (a d_h-vector of B_{l,h}, an r-vector of Abar_l) goes
through the same MLP. For q/k/v (heads split the output rows) the update is dW_P = s [F_{P,1}; ..; F_{P,H}]
A_m; for o (heads split the input columns) it is the mirror dW_o = s A_m^T [F_{o,1}^T .. F_{o,H}^T], so d is
the input size of q/k/v and the output size of o (the model width for both). Under grouped- or multi-query
attention a projection with H_P < H heads (k and v) gives its head j the mean of the pre-activations of the
H / H_P query heads that share it (Llama's ``repeat_kv`` order), so one seed set serves every projection.

Everything is batched over layers, heads and slots: per forward two products and one activation for the
bodies, one product per projection and one for all free factors, never a loop over heads or layers.

    pre      = W1B @ B                  (L, H, p, r)
    F_P      = W2B_P @ phi(pre_P)       (n_P, H_P, d_h, r)     pre_P: pre of the layers with P, GQA-pooled
    A        = W2A @ phi(W1A @ Abar)    (M, r, d)

Initialisation: dW = 0 at step 0 with W2B = 0 only. Seeds are N(0, seed_std^2) (default 1) and W1B, W1A
Kaiming-uniform, so the hidden activations are O(1) and W2B receives an O(1) gradient at the first step (the
gradient of a factor through two zero-initialised quantities, as in the residual form, would be second order).
W2A is random and rescaled per slot so that A's root mean square equals LoRA's Kaiming-uniform A, 1 / sqrt(3
d).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .config import HoraConfig
from .generator import _ACTIVATIONS, BankLayout, FactorBank, ModulePlan
from .heads import HeadLayoutError


def default_joint_hidden(head_dim: int) -> int:
    """Width p of the joint generators when the config leaves it open: d_h, so the output heads W2B
    (d_h x p) can reach every head-factor column and the coupling comes from the shared weights."""
    return head_dim


class JointBank(FactorBank):
    """Seeds and both hypernetworks of one adapter's joint form.

    Args:
        config: the adapter's HoraConfig (``generator="joint"``).
        head_dim: d_h.
        num_seed_heads: H, the seeds per layer (the largest head count of any adapted projection).
        heads_per_projection: H_P of every projection present; each must divide H.
        plans: the adapted modules; ``plan.body`` is its layer index, ``plan.free`` its free-factor slot.
        free_dim: d, the free side of every adapted module (input of q/k/v, output of o).
        num_layers: L.
    """

    def __init__(
        self,
        config: HoraConfig,
        head_dim: int,
        num_seed_heads: int,
        heads_per_projection: dict[str, int],
        plans: Sequence[ModulePlan],
        free_dim: int,
        num_layers: int,
    ) -> None:
        super().__init__()
        self.r = config.r
        self.head_dim = head_dim
        self.hidden = config.hidden or default_joint_hidden(head_dim)
        self.scaling = config.scaling
        self.uses_generator = True
        self.residual = False
        self.num_seed_heads = num_seed_heads
        self.heads_per_projection = dict(heads_per_projection)
        self.gain = float(config.generator_gain)
        self.activation = _ACTIVATIONS[config.activation]
        p, r = self.hidden, config.r
        slots = {proj: 0 for proj in heads_per_projection}
        for plan in plans:
            for slot in plan.slots:
                slots[slot.projection] += 1
        self.head_seeds = nn.Parameter(torch.empty(num_layers, num_seed_heads, head_dim, r))
        self.free_seeds = nn.Parameter(torch.empty(num_layers, r, free_dim))
        self.head_body = nn.Parameter(torch.empty(num_layers, p, head_dim))
        self.free_body = nn.Parameter(torch.empty(num_layers, p, r))
        self.head_out = nn.ParameterDict(
            {proj: nn.Parameter(torch.empty(n, head_dim, p)) for proj, n in sorted(slots.items())}
        )
        self.free_out = nn.Parameter(torch.empty(len(plans), r, p))
        self._gather_identity: dict[str, bool] = {}
        self.set_plans(plans)
        self.reset_parameters(config)

    @classmethod
    def build(cls, config: HoraConfig, layout: BankLayout) -> JointBank:
        """The joint bank, after checking that one per-head seed set can serve every adapted projection."""
        seed_heads = max(layout.heads_per_projection.values())
        uneven = {p: h for p, h in layout.heads_per_projection.items() if seed_heads % h}
        if uneven:
            raise HeadLayoutError(
                f"generator='joint' shares {seed_heads} per-head seeds across a layer's projections, so every "
                f"projection's head count must divide {seed_heads} (as under grouped-query attention); {uneven} "
                "does not. Use generator='mlp' for this model."
            )
        return cls(config, layout.head_dim, seed_heads, layout.heads_per_projection, layout.plans, layout.free_dim,
                   layout.num_bodies)

    def layer_factors(self, layer: nn.Module, adapter_name: str, plan: ModulePlan,
                      device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) of one HoraLayer, both generated: the head factor on its head-split side, the free factor
        (r, d_free) on the other."""
        generated = self.module_factor(plan, layer.layout.side).to(device)
        free = self.module_free_factor(plan).to(device)
        return (generated, free.t()) if layer.layout.side == "in" else (free, generated)

    def set_plans(self, plans: Sequence[ModulePlan]) -> None:
        """(Re)build the index buffers that map every head slot and free slot to its layer, on the
        parameters' device (meta ones too: loading under ``low_cpu_mem_usage`` calls this again)."""
        device = self.head_seeds.device
        head_layers: dict[str, list[int]] = {proj: [] for proj in self.head_out}
        free_layers = [0] * len(plans)
        for plan in plans:
            for slot in plan.slots:
                head_layers[slot.projection].append(plan.body)
            free_layers[plan.free] = plan.body
        layers = list(range(self.head_seeds.shape[0]))
        for proj, owners in [*head_layers.items(), ("free", free_layers)]:
            name = "free_layer_index" if proj == "free" else f"layer_index_{proj}"
            self.register_buffer(name, torch.tensor(owners, dtype=torch.long, device=device), persistent=False)
            self._gather_identity[proj] = owners == layers

    @torch.no_grad()
    def reset_parameters(self, config: HoraConfig) -> None:
        """Seeds N(0, seed_std^2); W1B, W1A Kaiming uniform; W2B zero (dW = 0) or, with ``init_weights=False`` (tests),
        N(0, 1); W2A random, rescaled so every generated A has root mean square 1 / sqrt(3 d)."""
        nn.init.normal_(self.head_seeds, std=config.seed_std)
        nn.init.normal_(self.free_seeds, std=config.seed_std)
        nn.init.kaiming_uniform_(self.head_body, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.free_body, a=math.sqrt(5))
        for head in self.head_out.values():
            if config.init_weights:
                nn.init.zeros_(head)
            else:
                nn.init.normal_(head)
        nn.init.kaiming_uniform_(self.free_out, a=math.sqrt(5))
        free = self._free_factors()
        target = 1.0 / math.sqrt(3 * self.free_seeds.shape[-1])
        rms = free.pow(2).mean(dim=(1, 2)).sqrt().clamp_min(torch.finfo(free.dtype).tiny)
        self.free_out.mul_((target / rms).view(-1, 1, 1))

    def _hidden(self, pre: torch.Tensor) -> torch.Tensor:
        return self.activation(pre * self.gain if self.gain != 1.0 else pre)

    def _gather(self, tensor: torch.Tensor, key: str) -> torch.Tensor:
        """Rows of ``tensor`` (one per layer) for the slots of ``key``; no copy when slots = layers."""
        if self._gather_identity[key]:
            return tensor
        index = self.free_layer_index if key == "free" else getattr(self, f"layer_index_{key}")
        return tensor.index_select(0, index)

    def _free_factors(self) -> torch.Tensor:
        """A = W2A phi(W1A Abar) of every module: (M, r, d), unscaled."""
        hidden = self._hidden(torch.matmul(self.free_body, self.free_seeds))  # (L, p, d)
        return torch.matmul(self.free_out, self._gather(hidden, "free"))

    def generate(self) -> dict[str, torch.Tensor]:
        """Scaled head factors, projection -> s F_P (n_P, H_P, d_h, r), and ``"free"`` -> A (M, r, d)."""
        pre = torch.matmul(self.head_body.unsqueeze(1), self.head_seeds)  # (L, H, p, r)
        factors = {}
        for proj, out_head in self.head_out.items():
            pre_p = self._gather(pre, proj)
            heads = self.heads_per_projection[proj]
            if heads != self.num_seed_heads:  # GQA/MQA: a shared k/v head pools its query heads' seeds
                n, _, p, r = pre_p.shape
                pre_p = pre_p.view(n, heads, self.num_seed_heads // heads, p, r).mean(dim=2)
            factors[proj] = torch.matmul(out_head.unsqueeze(1), self._hidden(pre_p)) * self.scaling
        factors["free"] = self._free_factors()
        return factors

    def generator_parameters(self) -> list[nn.Parameter]:
        """Both hypernetworks: bodies W1B, W1A and output heads W2B, W2A."""
        return [self.head_body, self.free_body, *self.head_out.values(), self.free_out]

    def parameter_counts(self) -> dict[str, int]:
        return {
            "seeds": self.head_seeds.numel(),
            "shared_free": self.free_seeds.numel(),
            "generator": self.generated_parameters(),
        }

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The bank's parameters by role, for update-norm diagnostics: seeds, bodies, output layers."""
        return {
            "head seeds B_h": [self.head_seeds],
            "free seed Abar": [self.free_seeds],
            "head body W1B": [self.head_body],
            "head output W2B": list(self.head_out.values()),
            "free body W1A": [self.free_body],
            "free output W2A": [self.free_out],
        }
