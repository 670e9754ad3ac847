"""course_lib.positional: the sinusoidal table, learned positions, rotary embeddings and ALiBi."""

import math

import pytest
import torch

from course_lib.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEmbedding,
    alibi_bias,
    apply_rotary,
    rotary_cos_sin,
    rotary_inverse_frequencies,
    rotate_half,
    sinusoidal_encoding,
)


# ---- sinusoidal -----------------------------------------------------------------------------
def test_sinusoidal_encoding_follows_the_paper_entry_by_entry():
    max_len, d = 12, 8
    table = sinusoidal_encoding(max_len, d)
    assert table.shape == (max_len, d) and table.dtype == torch.float32
    for pos in range(max_len):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(table[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)


def test_sinusoidal_encoding_rows_and_options():
    table = sinusoidal_encoding(100, 16, dtype=torch.float64)
    assert table.dtype == torch.float64
    assert table[0].tolist() == [0.0, 1.0] * 8  # sin(0), cos(0)
    # Every pair lies on the unit circle, so each row has squared norm d/2.
    torch.testing.assert_close(table.square().sum(-1), torch.full((100,), 8.0, dtype=torch.float64))
    # The dot product of two rows depends only on their distance.
    gram = table @ table.T
    torch.testing.assert_close(gram[10, 13], gram[50, 53])
    # A smaller base: faster turning on the last pair.
    assert sinusoidal_encoding(10, 4, base=100.0)[1, 2] == pytest.approx(math.sin(1 / 10), abs=1e-6)


def test_sinusoidal_encoding_validates():
    with pytest.raises(ValueError, match="even d_model"):
        sinusoidal_encoding(10, 7)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="positive int"):
            sinusoidal_encoding(bad, 8)
    with pytest.raises(ValueError, match="0 < base"):
        sinusoidal_encoding(10, 8, base=0)


def test_sinusoidal_module_adds_the_table_with_an_offset():
    module = SinusoidalPositionalEmbedding(20, 8)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(module(x), x + sinusoidal_encoding(20, 8)[:5])
    torch.testing.assert_close(module(x, offset=3), x + sinusoidal_encoding(20, 8)[3:8])
    torch.testing.assert_close(module.positions(4, offset=2), sinusoidal_encoding(20, 8)[2:6])
    assert list(module.parameters()) == [] and "table" not in module.state_dict()
    with pytest.raises(ValueError, match="positions 16 to 20.*max_len=20"):
        module(x, offset=16)


# ---- learned --------------------------------------------------------------------------------
def test_learned_positions_add_one_trained_vector_per_position():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(10, 6)
    x = torch.randn(3, 4, 6)
    out = module(x)
    torch.testing.assert_close(out, x + module.embedding.weight[:4])
    torch.testing.assert_close(module(x, offset=2), x + module.embedding.weight[2:6])
    assert sum(p.numel() for p in module.parameters()) == 60
    out.sum().backward()
    assert module.embedding.weight.grad[:4].abs().sum() > 0
    assert (module.embedding.weight.grad[4:] == 0).all()  # unseen positions learn nothing


def test_learned_positions_refuse_a_sequence_longer_than_max_len():
    module = LearnedPositionalEmbedding(8, 4)
    with pytest.raises(ValueError, match=r"positions 0 to 9.*max_len=8"):
        module(torch.randn(1, 10, 4))
    with pytest.raises(ValueError, match=r"d_model=4"):
        module(torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match="positive int"):
        LearnedPositionalEmbedding(0, 4)


# ---- rotary ---------------------------------------------------------------------------------
def complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """An independent formula: pair (x_i, x_{i+d/2}) as the complex number x_i + j x_{i+d/2} and
    multiply it by exp(j * pos * theta_i), theta_i = base^(-2i/d)."""
    d = x.shape[-1]
    theta = torch.tensor([base ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double())
    turned = z * torch.polar(torch.ones_like(theta), positions.double()[:, None] * theta)
    return torch.cat([turned.real, turned.imag], dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_apply_rotary_equals_the_complex_number_formula(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 8, generator=g, dtype=dtype)
    positions = torch.tensor([0, 1, 2, 5, 11, 30, 64])
    out = apply_rotary(x, positions)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), complex_rope(x, positions), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(apply_rotary(x, positions, base=100.0).double(),
                               complex_rope(x, positions, base=100.0), atol=1e-5, rtol=1e-5)


def test_apply_rotary_default_positions_and_the_module():
    x = torch.randn(2, 4, 6, 8)
    torch.testing.assert_close(apply_rotary(x), apply_rotary(x, torch.arange(6)))
    torch.testing.assert_close(RotaryEmbedding(8)(x), apply_rotary(x))
    torch.testing.assert_close(RotaryEmbedding(8, base=500.0)(x, torch.arange(3, 9)),
                               apply_rotary(x, torch.arange(3, 9), base=500.0))
    torch.testing.assert_close(apply_rotary(x[..., :1, :], torch.tensor([0])), x[..., :1, :])


def test_rotary_keeps_lengths_and_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)

    def score(m, n):
        return apply_rotary(q[None], torch.tensor([m]))[0] @ apply_rotary(k[None], torch.tensor([n]))[0]

    for m, n in [(0, 0), (3, 1), (7, 12), (40, 2)]:
        for shift in (1, 5, 100):
            assert score(m + shift, n + shift).item() == pytest.approx(score(m, n).item(), abs=1e-9)
    assert score(5, 0).item() != pytest.approx(score(6, 0).item(), abs=1e-6)  # but the offset matters
    rotated = apply_rotary(torch.randn(3, 10, 16, dtype=torch.float64))
    assert rotated.shape == (3, 10, 16)
    x = torch.randn(3, 10, 16, dtype=torch.float64)
    torch.testing.assert_close(apply_rotary(x).norm(dim=-1), x.norm(dim=-1))


def test_rotary_pieces():
    x = torch.arange(1.0, 7.0)
    assert rotate_half(x).tolist() == [-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]
    inv = rotary_inverse_frequencies(8)
    torch.testing.assert_close(inv, torch.tensor([1.0, 0.1, 0.01, 0.001]))
    cos, sin = rotary_cos_sin(torch.arange(3), 8)
    assert cos.shape == sin.shape == (3, 8)
    torch.testing.assert_close(cos[:, :4], cos[:, 4:])
    torch.testing.assert_close(sin[2, :4], (2 * inv).sin())


def test_rotary_matches_hugging_face_llama():
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    config = pytest.importorskip("transformers").LlamaConfig(
        hidden_size=64, num_attention_heads=4, max_position_embeddings=64
    )
    x = torch.randn(2, 4, 10, 16)
    positions = torch.arange(3, 13)
    cos, sin = llama.LlamaRotaryEmbedding(config)(x, positions[None].expand(2, -1))
    expected, _ = llama.apply_rotary_pos_emb(x, x, cos, sin)
    torch.testing.assert_close(apply_rotary(x, positions), expected)


def test_rotary_validates():
    with pytest.raises(ValueError, match="even d_head"):
        apply_rotary(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="4 positions.*sequence of 5"):
        apply_rotary(torch.randn(2, 5, 8), torch.arange(4))
    with pytest.raises(ValueError, match="integer positions"):
        apply_rotary(torch.randn(2, 5, 8), torch.arange(5.0))
    with pytest.raises(ValueError, match="last dimension must be 8"):
        RotaryEmbedding(8)(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="even d_head"):
        RotaryEmbedding(5)


# ---- ALiBi ----------------------------------------------------------------------------------
def test_alibi_bias_penalises_distance_both_ways():
    bias = alibi_bias(4, 0.5)
    assert bias.shape == (4, 4) and bias.dtype == torch.float32
    for i in range(4):
        for j in range(4):
            assert bias[i, j].item() == -0.5 * abs(i - j)
    per_head = alibi_bias(5, torch.tensor([0.5, 0.25]))
    assert per_head.shape == (2, 5, 5)
    torch.testing.assert_close(per_head[1], alibi_bias(5, 0.25))
    # On flat scores the softmax becomes local: each query's largest weight is on itself.
    weights = torch.softmax(alibi_bias(6, 1.0), dim=-1)
    assert (weights.argmax(-1) == torch.arange(6)).all()
    with pytest.raises(ValueError, match="0 < slope"):
        alibi_bias(4, -1.0)
    with pytest.raises(ValueError, match=r"\(heads,\)"):
        alibi_bias(4, torch.ones(2, 2))
