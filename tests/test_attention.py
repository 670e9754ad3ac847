"""course_lib.attention against PyTorch: the functional attention, the masks, and multi-head attention."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
    stable_softmax,
)

DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-9}


def random_shapes(seed):
    """Random leading dims (none, batch, or batch and heads), lengths and feature sizes."""
    g = torch.Generator().manual_seed(seed)
    lead = [(), (int(torch.randint(1, 4, (1,), generator=g)),),
            tuple(int(s) for s in torch.randint(1, 4, (2,), generator=g))][seed % 3]
    n_q, n_k, d_k, d_v = (int(s) for s in torch.randint(1, 9, (4,), generator=g))
    return g, lead, n_q, n_k, d_k, d_v


def random_mask(g, shape):
    mask = torch.rand(shape, generator=g) > 0.4
    mask[..., 0] = True  # no fully masked row here; those have their own test
    return mask


# ---- stable softmax -------------------------------------------------------------------------
def test_stable_softmax_equals_torch_softmax_on_every_dim():
    x = torch.randn(3, 4, 5, dtype=torch.float64) * 5
    for dim in (0, 1, -1):
        torch.testing.assert_close(stable_softmax(x, dim=dim), torch.softmax(x, dim=dim))


def test_stable_softmax_survives_scores_that_overflow_the_naive_formula():
    x = torch.tensor([1000.0, 999.0, 0.0])
    naive = x.exp() / x.exp().sum()
    assert torch.isnan(naive).any()  # the failure the trick prevents
    out = stable_softmax(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x, dim=-1))


def test_stable_softmax_validates():
    with pytest.raises(TypeError, match="floating-point"):
        stable_softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        stable_softmax(torch.randn(2, 3), dim=2)


# ---- scaled dot-product attention -----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_equals_pytorch_on_random_shapes(dtype, seed, with_mask):
    g, lead, n_q, n_k, d_k, d_v = random_shapes(seed)
    q = torch.randn(*lead, n_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*lead, n_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*lead, n_k, d_v, generator=g, dtype=dtype)
    mask = random_mask(g, (*lead, n_q, n_k)) if with_mask else None
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, **tol(dtype))
    assert out.dtype == dtype and weights.shape == (*lead, n_q, n_k)
    torch.testing.assert_close(weights.sum(-1), torch.ones(*lead, n_q, dtype=dtype), **tol(dtype))
    if with_mask:
        assert (weights[~mask] == 0).all()


def test_attention_weights_are_softmax_of_scaled_scores():
    q, k, v = torch.randn(2, 3, 16), torch.randn(2, 5, 16), torch.randn(2, 5, 4)
    _, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(weights, torch.softmax(q @ k.transpose(1, 2) / 4.0, dim=-1))
    _, unscaled = scaled_dot_product_attention(q, k, v, scale=1.0)
    torch.testing.assert_close(unscaled, torch.softmax(q @ k.transpose(1, 2), dim=-1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_broadcast_like_pytorch(dtype):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 6, 8, generator=g, dtype=dtype)
    k = torch.randn(2, 3, 6, 8, generator=g, dtype=dtype)
    v = torch.randn(2, 3, 6, 4, generator=g, dtype=dtype)
    combined = causal_mask(6) & padding_mask([6, 4])
    for mask in (causal_mask(6), padding_mask([6, 4]), combined):
        out, _ = scaled_dot_product_attention(q, k, v, mask)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_is_causal_equals_the_causal_mask_and_pytorch(dtype):
    q, k, v = (torch.randn(2, 5, 8, dtype=dtype) for _ in range(3))
    out, weights = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, causal_mask(5))[0])
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **tol(dtype))
    assert (weights.triu(1) == 0).all()
    with pytest.raises(ValueError, match="as many queries as keys"):
        scaled_dot_product_attention(q[:, :2], k, v, is_causal=True)


def test_a_query_with_every_key_masked_gets_zeros_like_pytorch_sdpa():
    q = torch.randn(1, 3, 4, requires_grad=True)
    k, v = torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False  # query 1 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert (weights[0, 1] == 0).all() and (out[0, 1] == 0).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    out.sum().backward()
    assert torch.isfinite(q.grad).all(), "no NaN leaks into the gradients either"
    # The documented difference: nn.MultiheadAttention (True = blocked) gives NaN for that row.
    torch_mha = nn.MultiheadAttention(4, 1, batch_first=True)
    torch_out, _ = torch_mha(q.detach(), k, v, attn_mask=~mask)
    assert torch.isnan(torch_out[0, 1]).all() and torch.isfinite(torch_out[0, 0]).all()
    ours = MultiHeadAttention.from_torch(torch_mha)(q.detach(), k, v, mask=mask)[0]
    torch.testing.assert_close(ours[0, [0, 2]], torch_out[0, [0, 2]])


def test_dropout_changes_the_weights_only_when_asked():
    q, k, v = (torch.randn(2, 6, 8) for _ in range(3))
    plain = scaled_dot_product_attention(q, k, v)[1]
    torch.manual_seed(0)
    dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.5)[1]
    assert (dropped == 0).any() and not torch.allclose(dropped, plain)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], plain[kept] * 2)  # inverted dropout scales by 1/(1-p)


# ---- validation -----------------------------------------------------------------------------
def test_mismatched_d_k_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 8\).*\(2, 5, 6\)"):
        scaled_dot_product_attention(torch.randn(2, 3, 8), torch.randn(2, 5, 6), torch.randn(2, 5, 6))


def test_keys_and_values_of_different_lengths():
    with pytest.raises(ValueError, match=r"5 keys.*4 values"):
        scaled_dot_product_attention(torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 4, 8))


def test_a_mask_that_cannot_broadcast_names_both_shapes():
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(2, 3, 5\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="cannot broadcast"):  # would enlarge the output
        scaled_dot_product_attention(q, k, v, torch.ones(4, 2, 3, 5, dtype=torch.bool))


def test_a_float_mask_is_refused_with_an_explanation():
    q = k = v = torch.randn(1, 3, 4)
    with pytest.raises(TypeError, match=r"boolean mask(.|\n)*\*adds\*"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 3))


def test_other_input_errors():
    with pytest.raises(TypeError, match="torch.Tensor"):
        scaled_dot_product_attention([[1.0]], torch.randn(1, 1), torch.randn(1, 1))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        scaled_dot_product_attention(torch.randn(4), torch.randn(3, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match="broadcastable"):
        scaled_dot_product_attention(torch.randn(2, 3, 4), torch.randn(3, 3, 4), torch.randn(3, 3, 4))
    with pytest.raises(TypeError, match="one dtype"):
        scaled_dot_product_attention(torch.randn(3, 4), torch.randn(3, 4).double(), torch.randn(3, 4))


# ---- masks ----------------------------------------------------------------------------------
def test_causal_mask_is_the_lower_triangle_with_the_diagonal():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert mask[i, j] == (j <= i)
    assert causal_mask(1).tolist() == [[True]]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="positive int"):
            causal_mask(bad)


def test_padding_mask_from_lengths_and_from_an_attention_mask():
    from_lengths = padding_mask([3, 1], max_len=4)
    assert from_lengths.shape == (2, 1, 1, 4) and from_lengths.dtype == torch.bool
    assert from_lengths[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False]]
    assert padding_mask(torch.tensor([2, 3])).shape == (2, 1, 1, 3)  # max_len = the longest
    left_padded = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert padding_mask(left_padded)[:, 0, 0].tolist() == left_padded.bool().tolist()
    with pytest.raises(ValueError, match="shorter than the longest"):
        padding_mask([3, 5], max_len=4)
    with pytest.raises(ValueError, match="0/1"):
        padding_mask(torch.tensor([[0, 2]]))
    with pytest.raises(TypeError, match="integer lengths"):
        padding_mask(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(2, 2, 2\)"):
        padding_mask(torch.ones(2, 2, 2, dtype=torch.long))


def test_padding_mask_hides_the_padding_from_every_query():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 5, 8, generator=g)  # (batch, heads, seq, d)
    mask = padding_mask([5, 3])
    _, weights = scaled_dot_product_attention(x, x, x, mask)
    assert (weights[1, :, :, 3:] == 0).all() and (weights[0] > 0).all()
    # The real tokens of the short sequence do not depend on what the padding holds.
    changed = x.clone()
    changed[1, :, 3:] = 100.0
    out = scaled_dot_product_attention(x, x, x, mask)[0]
    out_changed = scaled_dot_product_attention(changed, changed, changed, mask)[0]
    torch.testing.assert_close(out[1, :, :3], out_changed[1, :, :3])
    with pytest.raises(ValueError, match="cannot broadcast"):  # (batch, 1, 1, T) needs a heads axis
        scaled_dot_product_attention(x[:, 0], x[:, 0], x[:, 0], mask)


# ---- heads ----------------------------------------------------------------------------------
def test_split_heads_gives_each_head_a_contiguous_block_of_features():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    for h in range(3):
        torch.testing.assert_close(heads[:, h], x[:, :, 4 * h : 4 * h + 4])
    torch.testing.assert_close(merge_heads(heads), x)


def test_head_helpers_validate():
    with pytest.raises(ValueError, match="not divisible"):
        split_heads(torch.randn(2, 5, 10), 3)
    with pytest.raises(ValueError, match=r"\(batch, seq, d\)"):
        split_heads(torch.randn(5, 10), 2)
    with pytest.raises(ValueError, match=r"\(batch, heads, seq, d_head\)"):
        merge_heads(torch.randn(2, 5, 10))


# ---- multi-head attention -------------------------------------------------------------------
def make_pair(d_model=16, heads=4, bias=True, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    reference = nn.MultiheadAttention(d_model, heads, bias=bias, batch_first=True, dtype=dtype).eval()
    with torch.no_grad():  # torch starts its biases at 0: make them matter
        for p in reference.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return reference, MultiHeadAttention.from_torch(reference).eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_attention_equals_torch_self_attention(dtype, bias):
    reference, ours = make_pair(bias=bias, dtype=dtype)
    x = torch.randn(3, 7, 16, dtype=dtype)
    expected, expected_w = reference(x, x, x, average_attn_weights=False)
    out, weights = ours(x)
    torch.testing.assert_close(out, expected, **tol(dtype))
    torch.testing.assert_close(weights, expected_w, **tol(dtype))
    averaged = reference(x, x, x)[1]  # torch's default averages over heads
    torch.testing.assert_close(weights.mean(1), averaged, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_head_attention_equals_torch_with_masks_opposite_convention(dtype):
    reference, ours = make_pair(dtype=dtype, seed=1)
    x = torch.randn(2, 6, 16, dtype=dtype)
    lengths = [6, 4]
    causal, padding = causal_mask(6), padding_mask(lengths)
    expected, _ = reference(
        x, x, x, attn_mask=~causal, key_padding_mask=~padding[:, 0, 0], need_weights=False
    )
    out, _ = ours(x, mask=causal & padding)
    torch.testing.assert_close(out, expected, **tol(dtype))
    # Passing our mask to torch unchanged silently means the opposite (torch: True = blocked).
    wrong, _ = reference(x, x, x, attn_mask=causal)
    assert not torch.allclose(wrong[:, :-1], out[:, :-1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_head_cross_attention_equals_torch(dtype):
    reference, ours = make_pair(dtype=dtype, seed=2)
    query, memory = torch.randn(2, 3, 16, dtype=dtype), torch.randn(2, 9, 16, dtype=dtype)
    expected, expected_w = reference(query, memory, memory, average_attn_weights=False)
    out, weights = ours(query, memory)
    assert out.shape == (2, 3, 16) and weights.shape == (2, 4, 3, 9)
    torch.testing.assert_close(out, expected, **tol(dtype))
    torch.testing.assert_close(weights, expected_w, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_and_explicit_paths_give_the_same_numbers_and_gradients(dtype):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.1).to(dtype).eval()
    x = torch.randn(2, 6, 16, dtype=dtype)
    mask = causal_mask(6) & padding_mask([6, 5])
    slow, weights = mha(x, mask=mask, need_weights=True)
    fast, none = mha(x, mask=mask, need_weights=False)
    assert none is None and weights.shape == (2, 4, 6, 6)
    torch.testing.assert_close(fast, slow, **tol(dtype))
    causal_fast, _ = mha(x, need_weights=False, is_causal=True)
    torch.testing.assert_close(causal_fast, mha(x, mask=causal_mask(6))[0], **tol(dtype))
    both, _ = mha(x, mask=padding_mask([6, 5]), need_weights=False, is_causal=True)
    torch.testing.assert_close(both, slow, **tol(dtype))
    grads = []
    for need_weights in (True, False):
        mha.zero_grad()
        mha(x, mask=mask, need_weights=need_weights)[0].square().sum().backward()
        grads.append([p.grad.clone() for p in mha.parameters()])
    for g_slow, g_fast in zip(*grads):
        torch.testing.assert_close(g_fast, g_slow, **tol(dtype))


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = torch.randn(2, 6, 16)
    mha.train()
    assert not torch.allclose(mha(x)[0], mha(x)[0])
    assert not torch.allclose(mha(x, need_weights=False)[0], mha(x, need_weights=False)[0])
    mha.eval()
    torch.testing.assert_close(mha(x)[0], mha(x)[0])
    torch.testing.assert_close(mha(x, need_weights=False)[0], mha(x)[0])


def test_multi_head_attention_validates_its_inputs():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match=r"d_model=16.*\(2, 5, 12\)"):
        mha(torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match="one batch size"):
        mha(torch.randn(2, 5, 16), torch.randn(3, 5, 16))
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 5\)"):
        mha(torch.randn(2, 5, 16), mask=torch.ones(4, 4, dtype=torch.bool), need_weights=False)
    with pytest.raises(TypeError, match="boolean mask"):
        mha(torch.randn(2, 5, 16), mask=torch.ones(5, 5))
    for need_weights in (True, False):
        with pytest.raises(ValueError, match="3 queries and 5 keys"):
            mha(torch.randn(2, 3, 16), torch.randn(2, 5, 16), mask=torch.ones(3, 5, dtype=torch.bool),
                is_causal=True, need_weights=need_weights)
    with pytest.raises(TypeError, match="nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(4, 4))


def test_self_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 8, 16)
    perm = torch.randperm(8)
    out, _ = mha(x)
    shuffled_out, _ = mha(x[:, perm])
    torch.testing.assert_close(shuffled_out, out[:, perm])


def test_rotary_hook_rotates_each_heads_queries_and_keys():
    from course_lib.positional import RotaryEmbedding, apply_rotary

    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, rotary=RotaryEmbedding(4)).eval()
    x = torch.randn(2, 5, 16)
    q = apply_rotary(split_heads(mha.q_proj(x), 4))
    k = apply_rotary(split_heads(mha.k_proj(x), 4))
    v = split_heads(mha.v_proj(x), 4)
    expected = mha.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))
    torch.testing.assert_close(mha(x)[0], expected)
    torch.testing.assert_close(mha(x, need_weights=False)[0], expected)
    perm = torch.randperm(5)
    assert not torch.allclose(mha(x[:, perm])[0], mha(x)[0][:, perm], atol=1e-4)


def test_from_torch_copies_weights_not_references():
    reference, ours = make_pair()
    with torch.no_grad():
        ours.q_proj.weight.zero_()
    assert reference.in_proj_weight.abs().sum() > 0
    assert math.isclose(ours.dropout, reference.dropout)
