"""Configuration of a HoRA adapter (a PEFT config with a string ``peft_type``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from peft.config import PeftConfig


class PeftTypeName(str):
    """A PEFT type that is not a member of PEFT's ``PeftType`` enum: a plain ``str`` (so it is saved as
    ``"HORA"`` in adapter_config.json, compares equal to ``"HORA"`` and keys PEFT's mapping tables) with the
    enum's ``.value`` and ``.name``, which PEFT's own code reads (model cards, ``get_peft_model(...,
    mixed=True)``'s compatibility error, hotswap errors, gradient-checkpointing checks)."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)

    @property
    def name(self) -> str:
        return str(self)


PEFT_TYPE = PeftTypeName("HORA")
ACTIVATIONS = ("gelu", "relu", "tanh", "silu", "identity")
PROJECTIONS = ("q", "k", "v", "o")


@dataclass
class HoraConfig(PeftConfig):
    """Configuration of HoRA (cross-head low-rank adaptation with a joint hypernetwork).

    Every adapted projection P gets dW_P = s * B_P A_P (s = alpha / r, or alpha / sqrt(r) with rsLoRA).
    The *head factor* (B_P for q/k/v, whose rows are split by head; A_P for o, whose columns are split by
    head) is generated from per-head seeds S_P^h (d_h x r) by one generator per attention layer,
    g_{l,P}(s) = W2_{l,P} phi(W1_l s), applied to every seed column s; the *free factor* is an ordinary
    LoRA factor. See docs/method.md for the full formulation.

    Args:
        r: rank of every update (> 0).
        alpha: scaling numerator; s = alpha / r (or alpha / sqrt(r) when ``use_rslora``).
        use_rslora: use the rank-stabilised scaling alpha / sqrt(r).
        dropout: dropout probability on the adapter input (0 disables it).
        target_modules: module names (exact or suffix), a regex, or None for the model's q and v attention
            projections (see ``projections``).
        projections: which attention projections ``target_modules=None`` selects, a subset of q, k, v, o.
        exclude_modules: names or a regex of modules never adapted.
        hidden: generator width p; None picks max(4, d_h // 4), a marginal overhead over LoRA.
        activation: phi, one of gelu, relu, tanh, silu, identity (all satisfy phi(0) = 0).
        scope: "layer" (one generator per attention layer, shared by all heads and projections) or
            "module" (one generator per adapted projection).
        generator: "mlp" (the hypernetwork on d_h-dimensional seeds), "embedding" (the hypernetwork on
            small per-head embeddings z of size ``embedding_dim``: column = W2 phi(W1 z), always
            non-residual, fewer parameters than LoRA's B) or "identity" (head factor = seed; exactly LoRA
            when ``joint_free_factor`` and ``head_mixing`` are off).
        embedding_dim: k, the size of the per-head embeddings of generator="embedding" (None: max(2, d_h // 8)).
        residual: head factor column = s + g(s) (True) or g(s) (False); for generator="mlp".
        head_mixing: the generator sees all heads of a projection at once: seeds are first mixed across
            heads, S~^h = sum_h' M_{hh'} S^h', by a learned H x H matrix per module initialised to I.
        generator_gain: gamma in phi(gamma W1 s), so the activation is not linear where small seeds live.
        generator_lr_ratio: learning-rate multiplier of the shared generator (W1, W2, mixing) relative to
            seeds and free factors, applied by :func:`hora.param_groups` (LoRA+-style).
        w2_init: "zero" or "small" (N(0, 0.01^2)) initial output weight W2 of the generator.
        joint_free_factor: q/k/v of a layer take their free factor A_P = M_{l,P} A_l from one shared A_l
            through r x r maps M_{l,P} initialised to the identity.
        init_weights: True keeps dW = 0 at initialisation; False makes every factor random (for tests).
        head_layout: explicit layouts for modules that discovery cannot read, keyed by module-name suffix,
            e.g. ``{"attn.qkv": {"sections": [["q", 12], ["k", 4], ["v", 4]], "head_dim": 64}}`` or
            ``{"attn.proj": {"sections": [["o", 12]], "head_dim": 64}}``.
        layers_to_transform / layers_pattern: restrict adaptation to these layer indices (as in PEFT).
        modules_to_save: other modules to train and save (e.g. a new classifier head).
    """

    r: int = field(default=8, metadata={"help": "Rank of every low-rank update."})
    alpha: float = field(default=16.0, metadata={"help": "Scaling numerator: s = alpha / r."})
    use_rslora: bool = field(default=False, metadata={"help": "Use s = alpha / sqrt(r)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the adapter input."})
    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Names, suffixes or a regex; None selects the attention projections."}
    )
    projections: list[str] = field(
        default_factory=lambda: ["q", "v"], metadata={"help": "Projections chosen when target_modules=None."}
    )
    exclude_modules: list[str] | str | None = field(default=None, metadata={"help": "Modules never adapted."})
    hidden: int | None = field(default=None, metadata={"help": "Generator width p (None: max(4, d_h // 4))."})
    activation: str = field(default="gelu", metadata={"help": f"Generator activation, one of {ACTIVATIONS}."})
    scope: Literal["layer", "module"] = field(default="layer", metadata={"help": "Generator per layer or module."})
    generator: Literal["mlp", "embedding", "identity"] = field(
        default="mlp", metadata={"help": "mlp, embedding or identity (LoRA)."})
    embedding_dim: int | None = field(default=None, metadata={"help": "k for generator='embedding'."})
    residual: bool = field(default=True, metadata={"help": "Head factor = seed + g(seed) when True."})
    head_mixing: bool = field(default=False, metadata={"help": "Mix seeds across heads (H x H, init I)."})
    generator_gain: float = field(default=1.0, metadata={"help": "gamma in phi(gamma W1 s)."})
    generator_lr_ratio: float = field(default=1.0, metadata={"help": "LR multiplier of the generator."})
    w2_init: Literal["zero", "small"] = field(default="zero", metadata={"help": "Initial W2: zero or small."})
    joint_free_factor: bool = field(default=False, metadata={"help": "Share A across q/k/v of a layer."})
    init_weights: bool = field(default=True, metadata={"help": "True: dW = 0 at init. False: random."})
    head_layout: dict[str, dict] | None = field(default=None, metadata={"help": "Explicit head layouts."})
    layers_to_transform: list[int] | int | None = field(default=None, metadata={"help": "Layer indices."})
    layers_pattern: list[str] | str | None = field(default=None, metadata={"help": "Name of the layer list."})
    modules_to_save: list[str] | None = field(default=None, metadata={"help": "Extra modules to train/save."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = PEFT_TYPE
        if isinstance(self.target_modules, (list, tuple)):
            self.target_modules = set(self.target_modules)
        if isinstance(self.exclude_modules, (list, tuple)):
            self.exclude_modules = set(self.exclude_modules)
        self._validate()

    def _validate(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"HoraConfig: {message}")

        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r <= 0:
            fail(f"r must be a positive integer, got {self.r!r}.")
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool):
            fail(f"alpha must be a number, got {self.alpha!r}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            fail(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.hidden is not None and (not isinstance(self.hidden, int) or self.hidden <= 0):
            fail(f"hidden must be a positive integer or None, got {self.hidden!r}.")
        if self.activation not in ACTIVATIONS:
            fail(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        if self.scope not in ("layer", "module"):
            fail(f"scope must be 'layer' or 'module', got {self.scope!r}.")
        if self.generator not in ("mlp", "embedding", "identity"):
            fail(f"generator must be 'mlp', 'embedding' or 'identity', got {self.generator!r}.")
        if self.embedding_dim is not None and (not isinstance(self.embedding_dim, int) or self.embedding_dim <= 0):
            fail(f"embedding_dim must be a positive integer or None, got {self.embedding_dim!r}.")
        for name in ("generator_gain", "generator_lr_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                fail(f"{name} must be a positive number, got {value!r}.")
        if self.w2_init not in ("zero", "small"):
            fail(f"w2_init must be 'zero' or 'small', got {self.w2_init!r}.")
        unknown = set(self.projections) - set(PROJECTIONS)
        if not self.projections or unknown:
            fail(f"projections must be a non-empty subset of {PROJECTIONS}, got {self.projections!r}.")
        if isinstance(self.target_modules, str) and self.layers_to_transform is not None:
            fail("layers_to_transform cannot be combined with a regex target_modules.")
        if self.layers_pattern and self.layers_to_transform is None:
            fail("layers_pattern needs layers_to_transform.")
        if self.head_layout is not None and not isinstance(self.head_layout, dict):
            fail(f"head_layout must be a dict of module suffix -> layout, got {type(self.head_layout).__name__}.")

    @property
    def scaling(self) -> float:
        """s = alpha / r, or alpha / sqrt(r) with rsLoRA."""
        return float(self.alpha) / (self.r**0.5 if self.use_rslora else self.r)
