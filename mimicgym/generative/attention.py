"""Attention (Vaswani et al. 2017) and a decoder-only causal Transformer over token sequences.

- :func:`scaled_dot_product_attention`: softmax(Q K^T / sqrt(d) + M) V, written out;
- :class:`MultiHeadAttention`: project, split into heads, attend, concatenate, project;
- :func:`sinusoidal_positional_encoding` and learned positional embeddings;
- :class:`TransformerBlock`: a pre-norm block (as in GPT-2), x + attn(LN(x)), x + MLP(LN(x));
- :class:`CausalTransformer`: p(x) = prod_t p(x_t | x_<t) over a sequence of tokens; the
  prior of the VQ-VAE over its code grids, ``CausalTransformer((H * W,), vocab_size=K)``.

Masks follow :func:`torch.nn.functional.scaled_dot_product_attention`: a boolean mask is True
where a query may attend to a key, a float mask is added to the scores.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.base import GenerativeModel, categorical_log_prob
from mimicgym.utils.checks import check_choice, check_positive_int, check_probability

POSITIONAL = ("learned", "sinusoidal")


# -- attention -------------------------------------------------------------------------------
def causal_mask(queries: int, keys: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (queries, keys), True where query i may attend to key j <= i (torch's ``is_causal``)."""
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril()


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None,
                      causal: bool = False) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + M) over the keys: q (..., Tq, d), k (..., Tk, d) -> (..., Tq, Tk).

    A row whose keys are all masked out has no distribution and comes out NaN, as in torch.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(dim=-1)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + M) V: q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv).

    ``mask`` (broadcastable to (..., Tq, Tk)) is boolean (True: may attend) or additive;
    ``causal`` lets query i see keys j <= i only. Both may be given (torch's own refuses that).
    """
    return attention_weights(q, k, mask, causal) @ v


class MultiHeadAttention(nn.Module):
    """Multi-head attention: ``heads`` attentions of width d_model / heads side by side.

    ``forward(x, context=None, mask=None, causal=False)``: queries from x (B, Tq, d_model),
    keys and values from ``context`` (B, Tk, d_model; default x: self-attention). With
    ``fused=True`` the attention itself runs in torch's fused kernel (equal to 1e-6, faster).
    """

    def __init__(self, d_model: int, heads: int, *, bias: bool = True, fused: bool = False):
        super().__init__()
        if d_model % heads:
            raise ConfigError(f"d_model must be divisible by heads, got d_model={d_model!r}, heads={heads!r}")
        self.heads, self.fused = heads, fused
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        return x.view(B, T, self.heads, D // self.heads).transpose(1, 2)  # (B, heads, T, D/heads)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(context)), self._split(self.v_proj(context))
        if self.fused and not (causal and mask is not None):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        else:
            out = scaled_dot_product_attention(q, k, v, mask, causal)  # (B, heads, Tq, D/heads)
        B, _, Tq, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, Tq, -1))  # heads concatenated: (B, Tq, D)


# -- positions -------------------------------------------------------------------------------
def sinusoidal_positional_encoding(length: int, d: int) -> torch.Tensor:
    """(length, d): PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d))."""
    position = torch.arange(length, dtype=torch.float64)[:, None]  # (T, 1)
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)  # (ceil(d/2),)
    angle = position * frequency  # (T, ceil(d/2))
    encoding = torch.zeros(length, d, dtype=torch.float64)
    encoding[:, 0::2] = torch.sin(angle)
    encoding[:, 1::2] = torch.cos(angle[:, : d // 2])
    return encoding.to(torch.get_default_dtype())


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position (GPT): forward(T) -> (T, d)."""

    def __init__(self, length: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(0.02 * torch.randn(length, d))

    def forward(self, length: int) -> torch.Tensor:
        return self.weight[:length]


class SinusoidalPositionalEncoding(nn.Module):
    """The fixed encoding of :func:`sinusoidal_positional_encoding` as a buffer: forward(T) -> (T, d)."""

    def __init__(self, length: int, d: int):
        super().__init__()
        self.register_buffer("encoding", sinusoidal_positional_encoding(length, d), persistent=False)

    def forward(self, length: int) -> torch.Tensor:
        return self.encoding[:length]


# -- blocks ----------------------------------------------------------------------------------
def seeded_dropout(x: torch.Tensor, p: float, training: bool, generator: torch.Generator) -> torch.Tensor:
    """Inverted dropout whose mask comes from ``generator`` (``nn.Dropout`` draws from the global RNG)."""
    if not training or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + MLP(LN(x)); the residual stream is never normalised."""

    def __init__(self, d_model: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0, fused: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, heads, fused=fused)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, generator: torch.Generator, causal: bool = True) -> torch.Tensor:
        x = x + seeded_dropout(self.attention(self.norm1(x), causal=causal), self.dropout, self.training, generator)
        return x + seeded_dropout(self.mlp(self.norm2(x)), self.dropout, self.training, generator)


# -- the model -------------------------------------------------------------------------------
@dataclasses.dataclass
class TransformerConfig:
    vocab_size: int | None = None
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.0
    positional: str = "learned"  # or "sinusoidal"
    fused: bool = True  # torch's fused attention kernel; the written-out form gives the same numbers

    def __post_init__(self):
        check_positive_int("vocab_size", self.vocab_size)
        for name in ("d_model", "heads", "layers", "mlp_ratio"):
            check_positive_int(name, getattr(self, name))
        if self.d_model % self.heads:
            raise ConfigError(f"d_model must be divisible by heads, got d_model={self.d_model!r}, "
                              f"heads={self.heads!r}")
        check_probability("dropout", self.dropout)
        if self.dropout == 1.0:
            raise ConfigError("dropout must be < 1, got 1.0")
        check_choice("positional", self.positional, POSITIONAL)
        if not isinstance(self.fused, bool):
            raise ConfigError(f"fused must be a bool, got {self.fused!r}")


class CausalTransformer(GenerativeModel):
    """A decoder-only Transformer (GPT): p(x) = prod_t Categorical(x_t; softmax(f(x_<t))_t).

    ``CausalTransformer((T,), vocab_size=V)``. The input is shifted right behind a learned
    start vector, [start, x_0, ..., x_{T-2}], and attention is causal, so ``logits(x)[:, t]``
    (B, T, V) sees x_<t only and is aligned with x_t. Sampling runs T passes.
    """

    Config = TransformerConfig
    support = "tokens"

    def build(self) -> None:
        if len(self.data_shape) != 1:
            raise ConfigError(f"CausalTransformer models sequences: data_shape must be (T,), got {self.data_shape}")
        c, (T,) = self.config, self.data_shape
        self.embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.start = nn.Parameter(0.02 * torch.randn(c.d_model))
        positional = LearnedPositionalEmbedding if c.positional == "learned" else SinusoidalPositionalEncoding
        self.positional = positional(T, c.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(c.d_model, c.heads, c.mlp_ratio, c.dropout, c.fused)
                                    for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape
        shifted = torch.cat([self.start.expand(B, 1, -1), self.embedding(x[:, :-1])], dim=1)  # (B, T, d)
        h = seeded_dropout(shifted + self.positional(T), self.config.dropout, self.training, self.generator)
        for block in self.blocks:
            h = block(h, self.generator)
        return self.head(self.norm(h))  # (B, T, V)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, V): logits[:, t] parameterises p(x_t | x_<t), aligned with x."""
        return self._logits(self.check_input(x))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x)
        return categorical_log_prob(self._logits(x), x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sequences (n, T), long: x_t ~ p(x_t | x_<t) for t = 0..T-1, one pass each."""
        rng = self.rng(generator)
        was_training = self.training
        self.eval()
        x = torch.zeros(n, *self.data_shape, dtype=torch.long, device=self.device)
        for t in range(self.data_shape[0]):
            probs = self._logits(x[:, : t + 1])[:, t].softmax(-1)  # (n, V): the prefix is all it sees
            x[:, t] = torch.multinomial(probs, 1, generator=rng).squeeze(1)
        self.train(was_training)
        return x
