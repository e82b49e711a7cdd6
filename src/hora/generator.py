"""The head-factor banks: :class:`FactorBank`, what every bank shares (one batched generation per training
forward, a cache in evaluation, per-module lookup), and :class:`HoraBank`, the residual/embedding/identity
forms: per-head seeds and the generators of every adapted layer of one adapter (the joint form is
:mod:`hora.joint`).

Notation (docs/method.md): projection P of layer l has H_P heads of dimension d_h; its seeds are
S_P = [S_P^1 .. S_P^H], each d_h x r. One generator per layer (scope="layer") or per module
(scope="module") acts on every seed column s (a d_h-vector):

    g_{l,P}(s) = W2_{l,P} phi(W1_l s)         W1_l: p x d_h (shared body), W2_{l,P}: d_h x p (output head)
    head factor column = s + g_{l,P}(s)  (residual)   or   g_{l,P}(s)  (non-residual)

The bank stores the seeds of all modules of one projection P stacked into one tensor (n_P, H_P, d_h, r),
so the head factors of every layer come from two batched products per projection and one activation:

    hidden_P = phi(W1[body_P] @ S_P)     (n_P, H_P, p, r)
    G_P      = W2_P @ hidden_P (+ S_P)   (n_P, H_P, d_h, r)

never a loop over heads or layers. The bank also owns the shared free-factor seeds A_l (r x d_in) of
``joint_free_factor``. It lives on the tuner (``HoraModel.hora_bank[adapter]``), so it is saved, loaded,
moved and sharded with the model like any other adapter parameter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .config import HoraConfig

_ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "silu": F.silu,
    "identity": lambda x: x,
}


@dataclass(frozen=True)
class SeedSlot:
    """One head-split block of one module: projection ``projection``, entry ``index`` of that stack."""

    projection: str
    index: int
    num_heads: int


@dataclass(frozen=True)
class ModulePlan:
    """What the bank holds for one adapted module."""

    name: str
    body: int  # index of the generator body W1 this module's seeds go through
    slots: tuple[SeedSlot, ...]
    shared_free: int | None  # index into the shared free seeds A_l (joint_free_factor), else None
    free: int | None = None  # index of the free factor the bank generates (generator="joint"), else None


def default_hidden(head_dim: int) -> int:
    """Generator width p when the config leaves it open: max(4, d_h // 4), a marginal overhead."""
    return max(4, head_dim // 4)


def default_embedding_dim(head_dim: int) -> int:
    """Per-head embedding size k of generator="embedding" when left open: max(2, d_h // 8)."""
    return max(2, head_dim // 8)


class FactorBank(nn.Module):
    """What every bank shares: the generated factors of all adapted modules of one adapter, produced by
    one batched :meth:`generate` per training forward and cached in evaluation, and read per module by the
    layers (:meth:`module_factor`, :meth:`module_free_factor`).

    Subclasses implement :meth:`generate` (projection -> scaled head factors (n_P, H_P, d_h, r), and
    optionally ``"free"`` -> generated free factors (M, r, d_free)), :meth:`generator_parameters` and
    :meth:`parameter_counts`.
    """

    r: int
    scaling: float
    uses_generator: bool
    residual: bool

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[str, tuple[torch.Tensor, ...]] | None = None
        self._cache_key: tuple | None = None
        self.forward_depth = 0

    def generate(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self) -> dict[str, torch.Tensor]:
        """The bank as a module is its generation (used by ``torch.func`` diagnostics)."""
        return self.generate()

    def generator_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def set_plans(self, plans: Sequence[ModulePlan]) -> None:
        """(Re)build the index buffers that route every module's slots, on the parameters' device."""
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        """Exact parameter counts: ``seeds`` (per-head seeds), ``shared_free`` (seeds of shared free
        factors) and ``generator`` (everything :meth:`generator_parameters` returns)."""
        raise NotImplementedError

    def generated_parameters(self) -> int:
        """Number of generator parameters."""
        return sum(p.numel() for p in self.generator_parameters())

    def _parameter_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())

    def _generate_blocks(self) -> dict[str, tuple[torch.Tensor, ...]]:
        """:meth:`generate`, split per module (projection -> n_P tensors (H_P, d_h, r)).

        One ``unbind`` per projection: its backward is one ``stack``, where indexing every module's block
        separately would cost a zero-filled full-size gradient per module in the backward pass.
        """
        return {projection: factor.unbind(0) for projection, factor in self.generate().items()}

    def head_factors(self) -> dict[str, tuple[torch.Tensor, ...]]:
        """The generated factors, per projection one (H_P, d_h, r) tensor per module: once per training
        forward, cached in evaluation.

        With autograd on, :meth:`enter_forward` (a forward pre-hook of the model) generates them once,
        before any layer runs, and every layer of that forward reads them; activation-checkpointing
        recomputation in the backward pass reads the same tensors, so the recomputed graph matches. A
        layer called on its own, outside a model forward, generates fresh factors. With autograd off
        (evaluation, generation) they are cached until a parameter changes (in-place updates bump the
        tensors' version counters), except inside ``torch.compile``, whose graph includes the generation.
        """
        if torch.is_grad_enabled():
            # Inside a model forward, or inside a backward pass (activation checkpointing recomputes the layers
            # there, after the model forward has exited). A private torch call because no public one serves:
            # torch (2.13) has no public way to ask whether autograd is running a backward on this thread (a
            # torch.autograd.graph.is_backward_executing was proposed, pytorch PR 141276, and not merged);
            # torch.autograd.graph and torch.utils.checkpoint use this same call. -1: no backward running.
            in_model_pass = self.forward_depth > 0 or torch._C._current_graph_task_id() != -1
            if self._cache is not None and self._cache_key is None and in_model_pass:
                return self._cache
            return self._generate_blocks()
        if torch.compiler.is_compiling():
            # inside torch.compile the cache check (data pointers, version counters) would break the graph;
            # the generation is a handful of batched products, so the compiled graph simply includes it
            return self._generate_blocks()
        key = self._parameter_key()
        if self._cache is None or self._cache_key != key:
            self._cache, self._cache_key = self._generate_blocks(), key
        return self._cache

    def enter_forward(self) -> None:
        """Start of a model forward: with autograd on, generate this forward's factors up front."""
        self.forward_depth += 1
        if self.forward_depth == 1 and torch.is_grad_enabled():
            self._cache, self._cache_key = self._generate_blocks(), None

    def exit_forward(self) -> None:
        """End of a model forward (the factors stay available to checkpoint recomputation)."""
        self.forward_depth -= 1

    def module_factor(self, plan: ModulePlan, side: str) -> torch.Tensor:
        """The scaled head factor of one module: B (out x r) for side 'out', A (r x in) for side 'in'."""
        factors = self.head_factors()
        blocks = [factors[slot.projection][slot.index] for slot in plan.slots]  # each (H, d_h, r)
        if side == "in":
            (block,) = blocks
            return block.permute(2, 0, 1).reshape(self.r, -1)
        if len(blocks) == 1:
            return blocks[0].reshape(-1, self.r)
        return torch.cat([block.reshape(-1, self.r) for block in blocks], dim=0)

    def module_free_factor(self, plan: ModulePlan) -> torch.Tensor:
        """The generated free factor of one module, (r, d_free): A for q/k/v, B^T for o (generator="joint")."""
        return self.head_factors()["free"][plan.free]

    def _apply(self, fn, recurse: bool = True):  # noqa: D401 - nn.Module hook
        """Drop cached factors when the bank is moved or cast."""
        self._cache, self._cache_key = None, None
        return super()._apply(fn, recurse)


class HoraBank(FactorBank):
    """Seeds and generators of one adapter, with batched generation of all head factors.

    Args:
        config: the adapter's HoraConfig.
        head_dim: d_h, shared by all adapted modules.
        heads_per_projection: H_P for every projection P present.
        counts: n_P, the number of seed blocks of projection P (one per adapted module section).
        num_bodies: number of generator bodies W1 (layers, or modules for scope="module").
        shared_free_shape: (n_layers, r, d_in) of the joint free-factor seeds, or None.
    """

    def __init__(
        self,
        config: HoraConfig,
        head_dim: int,
        heads_per_projection: dict[str, int],
        counts: dict[str, int],
        num_bodies: int,
        shared_free_shape: tuple[int, int, int] | None,
    ) -> None:
        super().__init__()
        self.r = config.r
        self.head_dim = head_dim
        self.hidden = config.hidden or default_hidden(head_dim)
        self.scaling = config.scaling
        self.uses_generator = config.generator != "identity"
        self.embedding = config.generator == "embedding"
        self.seed_dim = (config.embedding_dim or default_embedding_dim(head_dim)) if self.embedding else head_dim
        self.residual = config.residual and not self.embedding
        self.gain = float(config.generator_gain)
        self.activation = _ACTIVATIONS[config.activation]
        self.seeds = nn.ParameterDict(
            {
                p: nn.Parameter(torch.empty(counts[p], heads_per_projection[p], self.seed_dim, config.r))
                for p in sorted(counts)
            }
        )
        self.mixing = nn.ParameterDict()
        if config.head_mixing:
            for p in sorted(counts):
                self.mixing[p] = nn.Parameter(torch.empty(counts[p], heads_per_projection[p], heads_per_projection[p]))
        self.output_heads = nn.ParameterDict()
        if self.uses_generator:
            self.body = nn.Parameter(torch.empty(num_bodies, self.hidden, self.seed_dim))
            for p in sorted(counts):
                self.output_heads[p] = nn.Parameter(torch.empty(counts[p], head_dim, self.hidden))
        self.shared_free = (
            nn.Parameter(torch.empty(*shared_free_shape)) if shared_free_shape is not None else None
        )
        self._body_is_identity: dict[str, bool] = {}
        self.reset_parameters(config)

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

        Residual: seeds 0, W2 0 or small. Non-residual and embedding: seeds random N(0, 1/seed_dim), W2 0.
        Identity: seeds 0 (LoRA's B). W1 ~ Kaiming uniform. Head mixing M = I. Shared free seeds
        A_l ~ Kaiming uniform (LoRA's A).
        """
        seed_random = (self.uses_generator and not self.residual) or not config.init_weights
        for seeds in self.seeds.values():
            if seed_random:
                nn.init.normal_(seeds, std=1.0 / math.sqrt(self.seed_dim))
            else:
                nn.init.zeros_(seeds)
        for mixing in self.mixing.values():
            mixing.copy_(torch.eye(mixing.shape[-1]).expand_as(mixing))
            if not config.init_weights:
                mixing.add_(0.1 * torch.randn_like(mixing))
        if self.uses_generator:
            nn.init.kaiming_uniform_(self.body, a=math.sqrt(5))
            for head in self.output_heads.values():
                if not config.init_weights:
                    nn.init.normal_(head, std=1.0 / math.sqrt(self.hidden))
                elif config.w2_init == "small" and self.residual:  # non-residual needs W2 = 0 for dW = 0
                    nn.init.normal_(head, std=0.01)
                else:
                    nn.init.zeros_(head)
        if self.shared_free is not None:
            nn.init.kaiming_uniform_(self.shared_free.view(-1, self.shared_free.shape[-1]), a=math.sqrt(5))

    def generate(self) -> dict[str, torch.Tensor]:
        """Scaled head factors of every module: projection -> s * G_P, shape (n_P, H_P, d_h, r)."""
        factors = {}
        for projection, seeds in self.seeds.items():
            if projection in self.mixing:
                seeds = torch.einsum("nhk,nkdr->nhdr", self.mixing[projection], seeds)
            if not self.uses_generator:
                factors[projection] = seeds * self.scaling
                continue
            # one bmm over all n_P * H_P (layer, head) blocks per product; W1/W2 are broadcast over heads so
            # that the output comes out contiguous in (n, H, d_h, r) and every module's B is a plain view
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
            factors[projection] = generated.view(n, heads, self.head_dim, r)
        return factors

    def generator_parameters(self) -> list[nn.Parameter]:
        """The shared generator: W1 bodies, W2 heads and head-mixing matrices."""
        shared = list(self.output_heads.values()) + list(self.mixing.values())
        return ([self.body] if self.uses_generator else []) + shared

    def parameter_counts(self) -> dict[str, int]:
        return {
            "seeds": sum(s.numel() for s in self.seeds.values()),
            "shared_free": self.shared_free.numel() if self.shared_free is not None else 0,
            "generator": self.generated_parameters(),
        }

