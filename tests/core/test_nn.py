"""Tests of polydiff.core.nn: shapes/dtypes (property tests), exact values of the embeddings, identity at zero
initialisation, configs that rebuild the module, and ValueErrors naming the argument."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from polydiff.core.nn import (
    FiLM,
    GaussianFourierEmbedding,
    MLPDenoiser,
    SinusoidalEmbedding,
    TransformerDenoiser,
    TransformerDenoiserBlock,
    UNet1D,
)

DTYPES = st.sampled_from([torch.float32, torch.float64])


def _rebuilds(module):
    text = json.dumps(module.config)
    twin = type(module)(**json.loads(text))
    twin.load_state_dict(module.state_dict())
    return twin


# ------------------------------------------------------------------------------------------------ embeddings


def test_sinusoidal_values_at_known_points():
    emb = SinusoidalEmbedding(4, max_period=10000.0)
    out = emb(torch.tensor([0.0, 1.0, 100.0], dtype=torch.float64))
    # frequencies 1 and 10000^(-1/2) = 0.01
    expected = torch.tensor([[0, 0, 1, 1],
                             [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)],
                             [math.sin(100), math.sin(1), math.cos(100), math.cos(1)]], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_sinusoidal_max_period_sets_lowest_frequency_and_odd_dim_pads():
    emb = SinusoidalEmbedding(7, max_period=100.0)
    out = emb(torch.tensor([3.0], dtype=torch.float64))[0]
    freqs = 100.0 ** (-torch.arange(3, dtype=torch.float64) / 3)
    torch.testing.assert_close(out[:3], torch.sin(3 * freqs))
    torch.testing.assert_close(out[3:6], torch.cos(3 * freqs))
    assert out[6] == 0


@given(dim=st.integers(2, 64).map(lambda d: 2 * (d // 2)), batch=st.integers(1, 6), dtype=DTYPES,
       seed=st.integers(0, 5))
def test_fourier_embedding_is_fixed_unit_pairs(dim, batch, dtype, seed):
    emb = GaussianFourierEmbedding(dim, scale=3.0, seed=seed)
    assert not list(emb.parameters())  # fixed, not trained
    t = torch.rand(batch, dtype=dtype)
    out = emb(t)
    assert out.shape == (batch, dim) and out.dtype == dtype
    half = dim // 2
    torch.testing.assert_close(out[:, :half] ** 2 + out[:, half:] ** 2, torch.ones(batch, half, dtype=dtype))
    torch.testing.assert_close(_rebuilds(emb)(t), out)
    torch.testing.assert_close(GaussianFourierEmbedding(dim, 3.0, seed)(t), out)  # same seed, same features
    w = emb.weight.to(torch.float64)
    torch.testing.assert_close(out[:, 0].double(), torch.sin(2 * math.pi * t.double() * w[0]),
                               rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)


def test_film_identity_at_zero_init_and_affine_after():
    film = FiLM(cond_dim=3, channels=4)
    h, c = torch.randn(2, 4, 5), torch.randn(2, 3)
    torch.testing.assert_close(film(h, c), h, rtol=0, atol=0)
    with torch.no_grad():
        film.linear.bias.copy_(torch.tensor([1.0, 2, 3, 4, -1, -2, -3, -4]))
    expected = (1 + torch.tensor([1.0, 2, 3, 4])[None, :, None]) * h + torch.tensor([-1.0, -2, -3, -4])[None, :, None]
    torch.testing.assert_close(film(h, c), expected)
    with pytest.raises(ValueError, match="c:"):
        film(h, torch.randn(2, 2))
    with pytest.raises(ValueError, match="h:"):
        film(torch.randn(2, 3, 5), c)


def test_embedding_bad_arguments():
    with pytest.raises(ValueError, match="max_period"):
        SinusoidalEmbedding(8, max_period=1.0)
    with pytest.raises(ValueError, match="dim"):
        GaussianFourierEmbedding(7)
    with pytest.raises(ValueError, match="t:"):
        SinusoidalEmbedding(8)(torch.zeros(2, 2))


# ------------------------------------------------------------------------------------------------ UNet1D


def _small_unet(**kw):
    return UNet1D(3, channels=(8, 16, 16), cond_dim=4, time_embedding_dim=8, kernel_size=3, n_groups=4, **kw)


@given(batch=st.integers(1, 4), length=st.integers(1, 21), dtype=DTYPES)
def test_unet1d_shapes_dtypes_any_length(batch, length, dtype):
    torch.manual_seed(0)
    model = _small_unet(out_channels=2).to(dtype).eval()
    x, t, cond = torch.randn(batch, 3, length, dtype=dtype), torch.rand(batch, dtype=dtype) * 999, \
        torch.randn(batch, 4, dtype=dtype)
    out = model(x, t, cond)
    assert out.shape == (batch, 2, length) and out.dtype == dtype
    assert torch.isfinite(out).all()
    # GroupNorm normalises per sample, so each sample's output does not depend on the rest of the batch
    torch.testing.assert_close(model(x[:1], t[:1], cond[:1]), out[:1])


def test_unet1d_conditioning_and_time_act_and_config_rebuilds():
    torch.manual_seed(0)
    model = _small_unet().eval()
    x, t, cond = torch.randn(2, 3, 16), torch.tensor([10.0, 500.0]), torch.randn(2, 4)
    out = model(x, t, cond)
    assert not torch.allclose(out, model(x, t, cond + 1))
    assert not torch.allclose(out, model(x, t + 100, cond))
    torch.testing.assert_close(_rebuilds(model)(x, t, cond), out)
    torch.testing.assert_close(model(x, 10.0, cond)[0], out[0])  # a scalar t is broadcast


def test_unet1d_computes_every_blocks_film_at_once_as_each_block_would():
    """UNet1D.forward computes all FiLM scales and shifts in one product; it must equal running each residual
    block with its own FiLM layer (the weights stay in the blocks, so saved models load unchanged), gradients too."""
    torch.manual_seed(0)
    model = _small_unet()
    for block in model._blocks():  # non-trivial FiLM weights in every block
        torch.nn.init.normal_(block.film.linear.weight, std=0.3)
        torch.nn.init.normal_(block.film.linear.bias, std=0.3)
    x, t, cond = torch.randn(2, 3, 13), torch.tensor([3.0, 700.0]), torch.randn(2, 4)

    def blockwise(x):
        c = torch.cat([model.time_embedding(t), cond], dim=-1)
        h, skips = torch.nn.functional.pad(x, (0, 3), mode="replicate"), []
        for block1, block2, downsample in model.down:
            h = block2(block1(h, c), c)
            skips.append(h)
            h = downsample(h)
        for mid in model.mid:
            h = mid(h, c)
        for block1, block2, upsample in model.up:
            h = upsample(block2(block1(torch.cat([h, skips.pop()], dim=1), c), c))
        return model.head(h)[..., :13]

    expected, got = blockwise(x), model(x, t, cond)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    weight = model.down[1][0].film.linear.weight
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), weight)
    (grad_got,) = torch.autograd.grad(got.square().sum(), weight)
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-4, atol=1e-5)


def test_unet1d_bad_shapes_name_the_argument():
    model = _small_unet()
    x, t, cond = torch.randn(2, 3, 8), torch.rand(2), torch.randn(2, 4)
    with pytest.raises(ValueError, match="x:"):
        model(torch.randn(2, 5, 8), t, cond)
    with pytest.raises(ValueError, match="t:"):
        model(x, torch.rand(3), cond)
    with pytest.raises(ValueError, match="cond:"):
        model(x, t, None)
    with pytest.raises(ValueError, match="cond:"):
        model(x, t, torch.randn(2, 3))
    with pytest.raises(ValueError, match="n_groups"):
        UNet1D(3, channels=(6, 12), n_groups=4)
    with pytest.raises(ValueError, match="kernel_size"):
        UNet1D(3, kernel_size=4)
    with pytest.raises(ValueError, match="cond:"):
        UNet1D(3, channels=(8,), n_groups=4)(x, t, cond)


# ------------------------------------------------------------------------------------------------ MLP


@given(batch=st.integers(1, 6), features=st.integers(1, 9), dtype=DTYPES, residual=st.booleans(),
       num_classes=st.integers(0, 3))
def test_mlp_shapes_dtypes(batch, features, dtype, residual, num_classes):
    torch.manual_seed(0)
    model = MLPDenoiser(features, out_features=features + 1, hidden=(16, 16), time_embedding_dim=8,
                        num_classes=num_classes, residual=residual).to(dtype)
    x, t = torch.randn(batch, features, dtype=dtype), torch.rand(batch, dtype=dtype)
    y = torch.randint(0, num_classes, (batch,)) if num_classes else None
    out = model(x, t, y)
    assert out.shape == (batch, features + 1) and out.dtype == dtype and torch.isfinite(out).all()


def test_mlp_null_label_is_the_unconditional_model():
    torch.manual_seed(0)
    model = MLPDenoiser(5, hidden=(16, 16), time_embedding_dim=8, num_classes=3)
    x, t = torch.randn(4, 5), torch.rand(4)
    torch.testing.assert_close(model(x, t), model(x, t, torch.full((4,), 3)))
    assert not torch.allclose(model(x, t), model(x, t, torch.zeros(4, dtype=torch.long)))
    torch.testing.assert_close(_rebuilds(model)(x, t, torch.arange(4) % 3), model(x, t, torch.arange(4) % 3))


def test_mlp_residual_adds_block_outputs():
    torch.manual_seed(0)
    plain = MLPDenoiser(3, hidden=(8, 8), time_embedding_dim=8, residual=False)
    residual = MLPDenoiser(3, hidden=(8, 8), time_embedding_dim=8, residual=True)
    residual.load_state_dict(plain.state_dict())
    x, t = torch.randn(2, 3), torch.rand(2)
    h = plain.proj(x) + plain.time_mlp(plain.time_features(t))
    h = plain.blocks[0](h)  # the 8-wide projection feeds an 8-wide block, so residual starts at block 0
    h_res = plain.proj(x) + plain.time_mlp(plain.time_features(t))
    h_res = h_res + plain.blocks[0](h_res)
    h_res = h_res + plain.blocks[1](h_res)
    torch.testing.assert_close(plain(x, t), plain.head(plain.blocks[1](h)))
    torch.testing.assert_close(residual(x, t), residual.head(h_res))


def test_mlp_bad_inputs_name_the_argument():
    model = MLPDenoiser(4, hidden=(8,), time_embedding_dim=8, num_classes=2)
    x, t = torch.randn(3, 4), torch.rand(3)
    with pytest.raises(ValueError, match="x:"):
        model(torch.randn(3, 5), t)
    with pytest.raises(ValueError, match="t:"):
        model(x, torch.rand(2))
    with pytest.raises(ValueError, match="y:"):
        model(x, t, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="y:"):
        model(x, t, torch.zeros(3))
    with pytest.raises(ValueError, match="y:"):
        MLPDenoiser(4, hidden=(8,), time_embedding_dim=8)(x, t, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="dropout"):
        MLPDenoiser(4, dropout=1.0)


# ------------------------------------------------------------------------------------------------ transformer


@given(batch=st.integers(1, 4), length=st.integers(1, 9), dtype=DTYPES, cross=st.booleans())
def test_transformer_shapes_dtypes(batch, length, dtype, cross):
    torch.manual_seed(0)
    model = TransformerDenoiser(3, out_features=2, dim=16, depth=2, heads=4, cond_dim=5,
                                context_dim=6 if cross else None, time_embedding_dim=8).to(dtype)
    with torch.no_grad():  # leave the zero init so the output is not trivially zero
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, t, cond = torch.randn(batch, length, 3, dtype=dtype), torch.rand(batch, dtype=dtype), \
        torch.randn(batch, 5, dtype=dtype)
    context = torch.randn(batch, 4, 6, dtype=dtype) if cross else None
    out = model(x, t, cond, context)
    assert out.shape == (batch, length, 2) and out.dtype == dtype and torch.isfinite(out).all()
    torch.testing.assert_close(model(x[:1], t[:1], cond[:1], None if context is None else context[:1]), out[:1])


def test_adaln_zero_block_is_identity_at_init_and_model_outputs_zero():
    torch.manual_seed(0)
    block = TransformerDenoiserBlock(16, 4, cond_dim=7)
    x, c = torch.randn(2, 5, 16), torch.randn(2, 7)
    torch.testing.assert_close(block(x, c), x, rtol=0, atol=0)
    model = TransformerDenoiser(3, dim=16, depth=2, heads=2)
    out = model(torch.randn(2, 5, 3), torch.rand(2))
    assert torch.equal(out, torch.zeros_like(out))


def test_cross_attention_uses_context_and_respects_mask():
    torch.manual_seed(0)
    block = TransformerDenoiserBlock(16, 4, cond_dim=7, context_dim=6)
    x, c, context = torch.randn(2, 5, 16), torch.randn(2, 7), torch.randn(2, 3, 6)
    out = block(x, c, context)
    assert not torch.allclose(out, x)
    mask = torch.tensor([[True, True, False], [True, True, False]])
    changed = context.clone()
    changed[:, 2] += 5.0
    torch.testing.assert_close(block(x, c, changed, mask), block(x, c, context, mask))
    twin = _rebuilds(block)
    torch.testing.assert_close(twin(x, c, context), out)


def test_transformer_bad_inputs_name_the_argument():
    block = TransformerDenoiserBlock(16, 4, cond_dim=7, context_dim=6)
    x, c = torch.randn(2, 5, 16), torch.randn(2, 7)
    with pytest.raises(ValueError, match="context:"):
        block(x, c)
    with pytest.raises(ValueError, match="c:"):
        block(x, torch.randn(2, 6), torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match="heads"):
        TransformerDenoiserBlock(16, 5, cond_dim=7)
    model = TransformerDenoiser(3, dim=16, depth=1, heads=4, cond_dim=2)
    with pytest.raises(ValueError, match="x:"):
        model(torch.randn(2, 5), torch.rand(2), torch.randn(2, 2))
    with pytest.raises(ValueError, match="cond:"):
        model(torch.randn(2, 5, 3), torch.rand(2))


# ------------------------------------------------------------------------------------------------ save / load


@pytest.mark.parametrize("cls,kwargs,inputs", [
    (MLPDenoiser, dict(in_features=3, out_features=5, hidden=(16, 8), time_embedding_dim=8, num_classes=2,
                       activation="silu"),
     lambda g: ((torch.randn(4, 3, generator=g), torch.rand(4, generator=g)), {"y": torch.tensor([0, 1, 2, 1])})),
    (UNet1D, dict(in_channels=2, channels=(8, 16), cond_dim=3, time_embedding_dim=8, kernel_size=3, n_groups=4,
                  time_embedding="fourier"),
     lambda g: ((torch.randn(2, 2, 7, generator=g), torch.rand(2, generator=g)),
                {"cond": torch.randn(2, 3, generator=g)})),
    (TransformerDenoiser, dict(in_features=3, dim=16, depth=1, heads=2, cond_dim=2, context_dim=4,
                               time_embedding_dim=8),
     lambda g: ((torch.randn(2, 5, 3, generator=g), torch.rand(2, generator=g)),
                {"cond": torch.randn(2, 2, generator=g), "context": torch.randn(2, 3, 4, generator=g)})),
])
def test_networks_save_and_load_pretrained(tmp_path, cls, kwargs, inputs):
    torch.manual_seed(0)
    model = cls(**kwargs)
    with torch.no_grad():  # the zero-initialised heads would make any two models agree
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(tmp_path / "net")
    assert {p.name for p in (tmp_path / "net").iterdir()} == {"config.json", "model.safetensors"}
    loaded = cls.from_pretrained(tmp_path / "net")
    assert type(loaded) is cls and loaded.config == model.config and not loaded.training
    args, cond = inputs(torch.Generator().manual_seed(1))
    model.eval()
    assert torch.equal(loaded(*args, **cond), model(*args, **cond))
    other = MLPDenoiser if cls is not MLPDenoiser else UNet1D
    with pytest.raises(ValueError, match=f"not a .*{other.__name__}"):
        other.from_pretrained(tmp_path / "net")
