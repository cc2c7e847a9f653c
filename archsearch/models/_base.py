"""The model base: timm's model interface and the classifier-head plumbing that every family shares.

A family's module subclasses :class:`ArchsearchModel` (a head that pools a (B, C, H, W) map: the CNN,
TinyViT and MCi) or :class:`TokenModel` (a head that pools tokens: the ViT and STViT), names the spec
class it realises, and keeps only what is its own: its body and ``forward_features``, its head
module, its weight initialisation and ``group_matcher``. The base holds what timm expects of every
model (``num_classes``, ``num_features``, ``pretrained_cfg``, ``get_classifier``, ``reset_classifier``,
``forward_head``, ``set_grad_checkpointing``) and what every timm entry point of the package does
(:meth:`ArchsearchModel.create`).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from timm.layers import trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq
from timm.models._pretrained import PretrainedCfg
from torch import nn

from archsearch.errors import SpecError
from archsearch.models._builder import SpecLike, entry_spec, with_overrides
from archsearch.space.base import ArchSpec

__all__ = ["LN_EPS", "ArchsearchModel", "TokenModel", "spec_pretrained_cfg"]

LN_EPS = 1e-6  # timm's and DeiT's LayerNorm epsilon


def spec_pretrained_cfg(spec: Any, *, in_channels: int | None = None, **fields: Any) -> dict[str, Any]:
    """timm's pretrained-config dict of a spec: its entry point, input size, classes and name, no weights.

    Args:
        spec: The spec.
        in_channels: Input channels (default ``spec.in_channels``).
        **fields: The family's other ``PretrainedCfg`` fields (``first_conv``, ``classifier``, ``pool_size`` ...).
    """
    channels = spec.in_channels if in_channels is None else in_channels
    return PretrainedCfg(
        architecture=f"archsearch_{spec.family}",
        input_size=(channels, spec.resolution, spec.resolution),
        num_classes=spec.num_classes,
        description=spec.name or None,
        **fields,
    ).to_dict()


class ArchsearchModel(nn.Module):
    """A module realising a spec, with timm's model API; its ``head`` pools a (B, C, H, W) map.

    The head is timm's ``ClassifierHead`` or one of its kind (``fc``, ``reset(num_classes, pool_type)``,
    ``forward(x, pre_logits)``), built by the family as its last child.

    Every family's constructor takes timm's arguments: ``spec`` (the architecture), ``num_classes`` and
    ``in_chans`` (override the spec's; the spec stays in sync), ``global_pool`` (the head's timm pooling
    type, ``"avg"`` as in the cost models) and ``drop_rate`` (dropout before the classifier); its own
    docstring lists the others.

    Attributes:
        spec: The spec the module realises (kept in sync by :meth:`reset_classifier`).
        num_classes: Classifier outputs (0: the head returns pooled features).
        in_chans: Input channels.
        num_features: Channels of the classifier's input (also ``head_hidden_size``), set by the family.
        grad_checkpointing: Whether ``forward_features`` checkpoints its stages.
        pretrained_cfg: timm's config dict (also ``default_cfg``).
    """

    #: The spec class the family realises, and its name with an article for messages ("a CNNSpec").
    spec_class: ClassVar[type[ArchSpec]]
    spec_noun: ClassVar[str]
    #: timm's pretrained config of a spec (the family's ``<family>_pretrained_cfg``).
    pretrained_cfg_of: ClassVar[Callable[[Any], dict[str, Any]]]
    #: timm's arguments that change the spec, applied by :meth:`with_overrides`.
    spec_arguments: ClassVar[tuple[str, ...]] = ("num_classes", "in_chans")
    #: How to load weights instead of ``pretrained=True``, for the entry point's message.
    weights_hint: ClassVar[str] = "load a checkpoint with checkpoint_path="

    def __init__(self, spec: ArchSpec, **spec_arguments: Any) -> None:
        """Checks the spec's class, applies timm's ``num_classes`` / ``in_chans`` (and the family's
        other :attr:`spec_arguments`) and sets the attributes every family has."""
        super().__init__()
        if not isinstance(spec, self.spec_class):
            raise SpecError(f"spec: expected {self.spec_noun}, got {type(spec).__name__}")
        self.spec = spec = self.with_overrides(spec, **spec_arguments)
        self.num_classes = spec.num_classes
        self.in_chans = self.input_channels(spec)
        self.grad_checkpointing = False
        self.pretrained_cfg = self.default_cfg = self.pretrained_cfg_of(spec)

    @staticmethod
    def with_overrides(spec: Any, num_classes: int | None = None, in_chans: int | None = None) -> Any:
        """The spec with timm's ``num_classes`` / ``in_chans`` arguments applied (validated by the spec)."""
        return with_overrides(spec, num_classes, in_chans)

    @staticmethod
    def input_channels(spec: Any) -> int:
        return spec.in_channels

    @staticmethod
    def feature_levels(spec: Any) -> int:
        """How many feature maps timm's ``features_only`` returns (children ``stem`` ... ``stages.i``)."""
        return spec.n_stages

    @classmethod
    def create(cls, pretrained: bool, spec: SpecLike | None, kwargs: dict[str, Any]) -> Any:
        """What the family's timm entry point ``archsearch_<family>`` does: refuses ``pretrained=True``
        and a ``pretrained_cfg`` (:func:`~archsearch.models._builder.entry_spec`), reads the spec, applies
        timm's spec arguments and builds with timm's ``build_model_with_cfg`` (``kwargs`` is consumed)."""
        family = cls.spec_class.family
        name = f"archsearch_{family}"
        cls._check_entry(name, kwargs)
        spec = entry_spec(name, family, pretrained, spec, kwargs, weights_hint=cls.weights_hint)
        spec = cls.with_overrides(spec, **{k: kwargs.pop(k, None) for k in cls.spec_arguments})
        return build_model_with_cfg(cls, name, pretrained=False, spec=spec, pretrained_cfg=cls.pretrained_cfg_of(spec),
                                    **cls._feature_cfg(spec), **kwargs)

    @classmethod
    def _check_entry(cls, name: str, kwargs: dict[str, Any]) -> None:
        """The family's checks of the entry point's arguments before the spec is read."""

    @classmethod
    def _feature_cfg(cls, spec: Any) -> dict[str, Any]:
        return dict(feature_cfg=dict(flatten_sequential=True, out_indices=tuple(range(cls.feature_levels(spec)))))

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def _checkpointed(self, seq: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``seq(x)``, through timm's ``checkpoint_seq`` while gradient checkpointing is on."""
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(seq, x)
        return seq(x)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replaces the classifier (0: none, the head returns pooled features) and optionally the pooling."""
        self.spec = self.with_overrides(self.spec, num_classes)
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class TokenModel(ArchsearchModel):
    """A module whose head pools tokens, as timm's ``VisionTransformer``: the class token (``token``) or
    the average of the other tokens (``avg``), then ``fc_norm``, dropout ``head_drop`` and a linear ``head``.

    The family builds its patch embedding and calls :meth:`_init_tokens` first, its blocks, then
    :meth:`_init_head` last; its ``forward_features`` starts with :meth:`_embed`. Weights are initialised
    as in timm's ViT (:meth:`_init_weights`).

    ``global_pool`` is ``token`` or ``avg`` (default: ``token`` with a class token, else ``avg``); the
    constructor's other arguments are :class:`ArchsearchModel`'s.

    Attributes:
        embed_dim: Token width (also ``num_features``, the classifier's input).
        num_prefix_tokens: 1 with a class token, else 0.
        global_pool: One of :attr:`global_pools`.
    """

    #: The pooling types the family accepts (``''``: no pooling, the head sees every token).
    global_pools: ClassVar[tuple[str, ...]] = ("token", "avg")
    #: Why timm's ``features_only`` is refused (the message's tail).
    no_features: ClassVar[str] = "; use forward_features"

    def __init__(self, spec: ArchSpec, *, global_pool: str | None = None, **spec_arguments: Any) -> None:
        """Sets the attributes of :class:`ArchsearchModel` and the token head's (``global_pool`` None:
        ``token`` with a class token, else ``avg``)."""
        super().__init__(spec, **spec_arguments)
        self.embed_dim = self.num_features = self.head_hidden_size = self.spec.embed_dim
        self.num_prefix_tokens = int(self.spec.class_token)
        self.global_pool = self._check_pool(global_pool)

    def _check_pool(self, global_pool: str | None) -> str:
        if global_pool is None:
            return "token" if self.spec.class_token else "avg"
        if global_pool not in self.global_pools:
            raise SpecError(f"global_pool: expected one of {list(self.global_pools)}, got {global_pool!r}")
        if global_pool == "token" and not self.spec.class_token:
            raise SpecError("global_pool: 'token' needs a class token (spec.class_token is false); use 'avg'")
        return global_pool

    def _init_tokens(self, patch_embed: nn.Module, tokens: int, pos_drop_rate: float) -> None:
        """The patch embedding, the class token (with ``spec.class_token``) and a position embedding of ``tokens``."""
        self.patch_embed = patch_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim)) if self.spec.class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, self.embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)

    def _init_head(self, *, fc_norm: bool, drop_rate: float) -> None:
        """The final LayerNorm (``norm`` on every token, or ``fc_norm`` after the pooling), ``head_drop`` and
        the linear ``head`` (none when ``num_classes`` is 0)."""
        d = self.embed_dim
        self.norm = nn.Identity() if fc_norm else nn.LayerNorm(d, eps=LN_EPS)
        self.fc_norm = nn.LayerNorm(d, eps=LN_EPS) if fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(d, self.num_classes) if self.num_classes else nn.Identity()

    def _init_weights(self) -> None:
        """timm's ViT initialisation: truncated normal (std 0.02) for the position embedding and the
        linear layers, zero biases, a near-zero class token."""
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @classmethod
    def _check_entry(cls, name: str, kwargs: dict[str, Any]) -> None:
        if kwargs.pop("features_only", False):
            raise SpecError(f"{name}: features_only is not supported{cls.no_features}")

    @classmethod
    def _feature_cfg(cls, spec: Any) -> dict[str, Any]:
        return {}

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C, H, W) -> tokens (B, c + N, d): patches, the class token, the position embedding."""
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pos_drop(x + self.pos_embed)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replaces the classifier (0: none, the head returns pooled features) and optionally the pooling;
        the new classifier is on the model's device, in its dtype and mode."""
        if global_pool is not None:
            self.global_pool = self._check_pool(global_pool)
        self.spec = self.with_overrides(self.spec, num_classes)
        self.num_classes = num_classes
        param = next(self.parameters())
        with torch.device(param.device):
            self.head = nn.Linear(self.embed_dim, num_classes, dtype=param.dtype) if num_classes else nn.Identity()
        self.head.train(self.training)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "token":
            x = x[:, 0]
        elif self.global_pool == "avg":
            x = x[:, self.num_prefix_tokens:].mean(dim=1)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)
