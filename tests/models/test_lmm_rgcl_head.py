"""LMM-RGCL's MLP head: per-channel standardisation of h with saved training statistics (the same
numbers at training and at inference), g before or after the GELU, old folders' ``norm`` booleans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from somelvlm.models.lmm_rgcl import HeadConfig, MemeHead


def _h(n: int = 40, d: int = 12, seed: int = 0) -> np.ndarray:
    """h like a small LM's: one big shared vector (two huge channels) plus a small per-meme part."""
    rng = np.random.default_rng(seed)
    shared = np.zeros(d, np.float32)
    shared[:2] = (30.0, -12.0)
    return (shared + 0.2 * rng.standard_normal((n, d))).astype(np.float32)


def _cos(x: np.ndarray) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float((x @ x.T)[np.triu_indices(len(x), 1)].mean())


def test_standardised_head_applies_saved_training_stats_identically_after_reload(tmp_path):
    from safetensors.torch import load_file, save_file

    h = _h()
    torch.manual_seed(0)
    head = MemeHead(HeadConfig(in_dim=12, width=8, dropout=0.0, norm="standard")).eval()
    head.fit_standardizer(h)
    assert np.allclose(head.h_mean.numpy(), h.mean(0), atol=1e-5)
    assert np.allclose(head.h_std.numpy(), h.std(0, ddof=1), atol=1e-5)
    assert int(head.h_fitted) == len(h)
    # the first layer sees (h - train mean) / train std, for new memes too
    new = torch.from_numpy(_h(5, seed=1))
    z = head.embed((new - torch.from_numpy(h.mean(0))) / torch.from_numpy(h.std(0, ddof=1)))
    out = head(new)
    assert torch.allclose(out["g"], torch.nn.functional.gelu(z), atol=1e-5)
    # saved with the weights (head.safetensors) and applied the same after loading
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / "head.safetensors"))
    state = load_file(str(tmp_path / "head.safetensors"))
    assert {"h_mean", "h_std", "h_fitted"} <= set(state)
    again = MemeHead(HeadConfig(in_dim=12, width=8, dropout=0.0, norm="standard")).eval()
    again.load_state_dict(state)
    back = again(new)
    assert torch.equal(back["g"], out["g"]) and torch.equal(back["logit"], out["logit"])


def test_standardisation_undoes_the_shared_vector_that_layernorm_keeps():
    h = _h()
    assert _cos(h) > 0.99  # the collapse measured on SmolLM2's h
    torch.manual_seed(0)
    std = MemeHead(HeadConfig(in_dim=12, width=64, dropout=0.0, norm="standard")).eval()
    std.fit_standardizer(h)
    torch.manual_seed(0)
    ln = MemeHead(HeadConfig(in_dim=12, width=64, dropout=0.0, norm="layer")).eval()
    with torch.no_grad():
        assert _cos(ln.normalise(torch.from_numpy(h)).numpy()) > 0.99
        assert abs(_cos(std.normalise(torch.from_numpy(h)).numpy())) < 0.2


def test_unfitted_standardiser_wrong_shapes_and_bad_options_are_refused():
    head = MemeHead(HeadConfig(in_dim=12, width=8, norm="standard"))
    with pytest.raises(RuntimeError, match="fit_standardizer"):
        head(torch.zeros(2, 12))
    with pytest.raises(ValueError, match=r"\(n >= 2, 12\)"):
        head.fit_standardizer(np.zeros((5, 7), np.float32))
    with pytest.raises(ValueError, match="norm 'standard'"):
        MemeHead(HeadConfig(in_dim=12, norm="layer")).fit_standardizer(_h())
    with pytest.raises(ValueError, match="head norm"):
        HeadConfig(in_dim=12, norm="batch")
    with pytest.raises(ValueError, match="head embed"):
        HeadConfig(in_dim=12, embed="middle")


def test_old_boolean_norm_and_embed_before_the_gelu():
    assert HeadConfig(in_dim=4, norm=True).norm == "layer" and HeadConfig(in_dim=4, norm=False).norm == "none"
    torch.manual_seed(0)
    head = MemeHead(HeadConfig(in_dim=12, width=8, dropout=0.0, embed="pre")).eval()
    x = torch.from_numpy(_h(3))
    out = head(x)
    z = head.embed(x)
    assert torch.allclose(out["g"], z) and (out["g"] < 0).any()  # g is the linear output, negatives kept
    assert torch.allclose(out["logit"], head.out(torch.nn.functional.gelu(z)).squeeze(-1))
