"""OwlNet: a small CNN on background-normalised low-band spectrograms, as an
``AutoModelForAudioClassification``.

Self-contained (``torch``, ``transformers`` and the configuration beside it): ``save_pretrained`` copies this
file into the model folder, so ``pipeline("audio-classification", model=folder, trust_remote_code=True)`` works
without ``owlfinder``; with ``owlfinder`` imported the class is registered and no remote code is needed.

Layers, for ``input_features`` ``[batch, bands, frames]`` in dB (:class:`OwlNetFeatureExtractor`):

1. :func:`normalise_bands`: each band minus its background floor (a low quantile over the frames), in units
   of ``db_scale`` dB, clamped. Level, microphone response and steady noise drop out.
2. Three convolution stages (3x3, batch norm, ReLU, max-pooling) over bands x frames.
3. A convolution spanning all remaining bands: the features of each time step, pitch kept.
4. Residual dilated temporal convolutions (about 2 s of context: a double hoot's two notes).
5. Max and mean over time, dropout, a linear classifier.

Steps 2-5 form one :class:`OwlNetTrunk`; with ``n_members`` > 1 the model holds several, independently
initialised, and averages their logits.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_owlnet import OwlNetConfig

__all__ = ["OwlNetForAudioClassification", "OwlNetTrunk", "normalise_bands"]


def normalise_bands(db: torch.Tensor, quantile: float, scale: float, low: float, high: float) -> torch.Tensor:
    """``db`` ``[batch, bands, frames]`` minus each band's ``quantile`` over frames, divided by ``scale`` and
    clamped to ``[low, high]``. (The largest of the ``k + 1`` smallest values: it exports to ONNX's TopK,
    and is 3x faster than a sort; ``torch.quantile`` does not export.)"""
    n = int(db.shape[-1])  # a constant when traced for ONNX: the window is fixed
    k = min(n - 1, max(0, int(round(quantile * (n - 1)))))
    floor = torch.topk(db, k + 1, dim=-1, largest=False, sorted=False).values.amax(dim=-1, keepdim=True)
    return ((db - floor) / scale).clamp(low, high)


def _stage(c_in: int, c_out: int, pool: tuple[int, int], n_conv: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_conv):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(pool))
    return nn.Sequential(*layers)


class _Temporal(nn.Module):
    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.norm(self.conv(x)))


class OwlNetPreTrainedModel(PreTrainedModel):
    config_class = OwlNetConfig
    base_model_prefix = "owlnet"
    main_input_name = "input_features"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class OwlNetTrunk(nn.Module):
    """One member: convolution stages, the band-collapsing layer, temporal convolutions, pooling, classifier."""

    def __init__(self, config: OwlNetConfig):
        super().__init__()
        c1, c2, c3 = config.channels
        self.bands = config.n_bins // 4
        self.stages = nn.Sequential(_stage(1, c1, (2, 2), 1), _stage(c1, c2, (2, 2), 1), _stage(c2, c3, (1, 2), 2))
        self.collapse = nn.Sequential(nn.Conv2d(c3, config.hidden_size, (self.bands, 1), bias=False),
                                      nn.BatchNorm2d(config.hidden_size), nn.ReLU(inplace=True))
        self.temporal = nn.Sequential(*[_Temporal(config.hidden_size, d) for d in config.temporal_dilations])
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * config.hidden_size, config.num_labels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[batch, 2 * hidden_size]`` of a normalised image ``[batch, 1, bands, frames]``."""
        x = self.stages(x)
        x = self.collapse(x[:, :, : self.bands]).squeeze(2)
        x = self.temporal(x)
        return torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold every batch norm into the convolution before it (eval mode only)."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        for seq in (*self.stages, self.collapse):
            for i in range(len(seq) - 1):
                if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                    seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()
        for block in self.temporal:
            if isinstance(block.norm, nn.BatchNorm1d):
                block.conv, block.norm = fuse_conv_bn_eval(block.conv, block.norm), nn.Identity()


class OwlNetForAudioClassification(OwlNetPreTrainedModel):
    """OwlNet: :func:`normalise_bands`, then ``config.n_members`` independently initialised
    :class:`OwlNetTrunk` members whose logits are averaged (an ensemble in one model; one member by default).
    Trained jointly, each member on its own loss, so they stay independent; ``outputs.hidden_states`` holds the
    members' own logits ``[members, batch, labels]``."""

    #: Windows per forward pass that ``owlfinder`` uses on a CPU: its activations are large for its size, and
    #: passes of 8 were 1.3x faster per window than passes of 32 (they stay in cache).
    cpu_chunk = 8

    def __init__(self, config: OwlNetConfig):
        super().__init__(config)
        self.members = nn.ModuleList([OwlNetTrunk(config) for _ in range(config.n_members)])
        self.post_init()

    @classmethod
    def from_members(cls, models: list[OwlNetForAudioClassification]) -> OwlNetForAudioClassification:
        """One model whose members are those of ``models`` (trained apart, e.g. with different seeds), in order:
        an ensemble that averages their logits. The models must share everything but their weights."""
        if not models:
            raise ValueError("no models to join")
        keys = ("n_bins", "floor_quantile", "db_scale", "clamp_low", "clamp_high", "channels", "hidden_size",
                "temporal_dilations", "num_labels")
        first = models[0].config
        for m in models[1:]:
            if any(getattr(m.config, k) != getattr(first, k) for k in keys):
                raise ValueError("the models differ in architecture; only their weights may differ")
        config = first.__class__.from_dict({**first.to_dict(), "n_members": sum(m.config.n_members for m in models)})
        joined = cls(config)
        for i, member in enumerate(member for m in models for member in m.members):
            joined.members[i].load_state_dict(member.state_dict())
        return joined.eval()

    @torch.no_grad()
    def optimize_for_inference(self) -> OwlNetForAudioClassification:
        """Fold every batch norm into the convolution before it and store the convolutions channels-last:
        the same function (to float32 rounding), about 2x faster on a CPU. For a model in eval mode that will
        not be trained again (``owlfinder``'s engine calls it); returns the model."""
        self.eval()
        for member in self.members:
            member.fuse()
        return self.to(memory_format=torch.channels_last)

    def normalise(self, input_features: torch.Tensor) -> torch.Tensor:
        c = self.config
        return normalise_bands(input_features, c.floor_quantile, c.db_scale, c.clamp_low, c.clamp_high)

    def forward(self, input_features: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
                ) -> SequenceClassifierOutput:
        x = self.normalise(input_features).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        each = torch.stack([member(x) for member in self.members])
        logits = each.mean(dim=0)
        loss = None
        if labels is not None:  # each member learns on its own: the mean of their losses
            loss = torch.stack([nn.functional.cross_entropy(m.float(), labels) for m in each]).mean()
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=each if len(each) > 1 else None)
