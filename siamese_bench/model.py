"""`SiameseModel`: one shared backbone (the twin encoder) plus the head that owns loss and similarity.

    model = SiameseModel.build("small-cnn", "koch", in_channels=1, image_size=28)
    e = model.embed(x)                       # (B, C, H, W) float in [0, 1] -> (B, D)
    model.head.loss(e[:B // 2], e[B // 2:], same)

Both sides of a pair go through the same backbone (weights are shared by construction), so training and
evaluation embed a concatenated batch in one forward pass.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


class SiameseModel(nn.Module):
    """backbone: (B, C, H, W) float -> (B, D) with `out_dim = D`; head: a Head (see siamese_bench.heads)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        for attr in ("objective", "metric", "loss", "similarity", "score"):
            if not hasattr(head, attr):
                raise ValueError(
                    f"SiameseModel: head {type(head).__name__} lacks `{attr}`; heads must follow the Head "
                    "interface in siamese_bench.heads (objective, metric, loss, similarity, score)"
                )
        if head.objective not in ("pair", "triplet"):
            raise ValueError(
                f"SiameseModel: head {type(head).__name__} has objective {head.objective!r}; "
                "expected 'pair' or 'triplet'"
            )
        self.backbone = backbone
        self.head = head

    @classmethod
    def build(
        cls, backbone: str, head: str, *, in_channels: int = 1, image_size: int = 28, **head_options
    ) -> SiameseModel:
        """Backbone and head by registry name; the head gets the backbone's `out_dim`."""
        from siamese_bench.backbones import BACKBONES
        from siamese_bench.heads import HEADS

        factory = BACKBONES.get(backbone)
        try:  # a registered factory of one's own that does not take the two arguments the registry passes
            inspect.signature(factory).bind(in_channels=in_channels, image_size=image_size)
        except TypeError as e:
            raise ValueError(
                f"backbone {backbone!r}: its factory must take the keyword arguments in_channels and image_size "
                f"(they are passed as factory(in_channels={in_channels}, image_size={image_size})); {e}"
            ) from None
        except ValueError:  # no signature to read (a builtin): just call it
            pass
        net = factory(in_channels=in_channels, image_size=image_size)
        dim = getattr(net, "out_dim", None)
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(
                f"backbone {backbone!r} ({type(net).__name__}) has out_dim {dim!r}; a backbone states the size D of "
                "the (B, D) embeddings it returns: set `module.out_dim = D` in its factory"
            )
        return cls(net, HEADS.get(head)(dim, **head_options))

    @property
    def objective(self) -> str:
        return self.head.objective

    @property
    def metric(self) -> bool:
        return bool(self.head.metric)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) float in [0, 1] -> (B, D) embeddings."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)
