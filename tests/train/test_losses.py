"""Each loss against a hand computation on tiny tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from somelvlm.train.losses import (  # noqa: E402
    ITC_INIT_LOGIT_SCALE, aux_loss, class_weights, hybrid_loss, itc_loss, itm_loss, itm_shuffle, rgcl_loss,
    weighted_ce,
)


def test_class_weights_balance_and_power():
    w = class_weights(torch.tensor([0, 0, 0, 1]), 2)
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2]))
    assert torch.allclose(class_weights(torch.tensor([0, 0, 0, 1]), 2, power=0.0), torch.ones(2))
    assert class_weights(torch.tensor([0, 0]), 3)[2] == 1.0  # absent class


def test_weighted_ce_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    w = torch.tensor([1.0, 3.0])
    lp0 = 2 - math.log(math.exp(2) + 1)
    lp1 = 1 - math.log(1 + math.e)
    expected = -(1 * lp0 + 3 * lp1) / (1 + 3)
    terms = weighted_ce(logits, y, w)
    assert set(terms) == {"loss", "ce"}
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_itc_by_hand():
    img = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised: e1, e2
    txt = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # normalised: (1,1)/sqrt2, e2
    scale = torch.tensor(math.log(10.0))
    c = 1 / math.sqrt(2)
    sim = [[c, 0.0], [c, 1.0]]  # image i vs text j
    lg = [[10 * v for v in row] for row in sim]

    def ce(row, target):
        return -(row[target] - math.log(sum(math.exp(v) for v in row)))

    i2t = (ce(lg[0], 0) + ce(lg[1], 1)) / 2
    t2i = (ce([lg[0][0], lg[1][0]], 0) + ce([lg[0][1], lg[1][1]], 1)) / 2
    terms = itc_loss(img, txt, scale)
    assert terms["i2t"].item() == pytest.approx(i2t, rel=1e-5)
    assert terms["t2i"].item() == pytest.approx(t2i, rel=1e-5)
    assert terms["loss"].item() == pytest.approx((i2t + t2i) / 2, rel=1e-5)
    assert ITC_INIT_LOGIT_SCALE == pytest.approx(math.log(1 / 0.07), abs=1e-4)


def test_itm_loss_and_shuffle():
    logits = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    match = torch.tensor([1, 1])
    expected = (-(2 - math.log(1 + math.exp(2))) - (0 - math.log(math.e + 1))) / 2
    terms = itm_loss(logits, match)
    assert terms["itm"].item() == pytest.approx(expected, rel=1e-6)
    assert terms["itm_acc"].item() == 0.5
    gen = torch.Generator().manual_seed(0)
    idx, is_match = itm_shuffle(64, 0.5, generator=gen)
    own = idx == torch.arange(64)
    assert torch.equal(own.long(), is_match)  # swapped texts are never the item's own
    assert 10 < int((~own).sum()) < 54
    idx1, m1 = itm_shuffle(1)
    assert idx1.tolist() == [0] and m1.tolist() == [1]


def test_aux_loss_weights():
    ce, itc, itm = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)
    t = aux_loss(ce, itc, itm, 0.1, 0.1)
    assert t["loss"].item() == pytest.approx(0.8 * 1 + 0.1 * 2 + 0.1 * 3)
    assert set(t) == {"loss", "ce", "itc", "itm"}
    assert aux_loss(ce, None, None, 0.0, 0.0)["loss"].item() == 1.0
    with pytest.raises(ValueError, match="b_itc"):
        aux_loss(ce, itc, itm, 0.6, 0.5)


def test_rgcl_contrastive_by_hand():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 0])
    pos = torch.tensor([[1.0, 0.2], [0.0, 1.0], [1.0, 0.0]])
    hn = torch.tensor([[[0.0, 1.0], [1.0, -1.0]], [[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    gn = torch.nn.functional.normalize(g, dim=-1)

    def cos(a, b):
        a, b = torch.tensor(a), torch.tensor(b)
        return float((a @ b) / (a.norm() * b.norm()))

    per = []
    for i in range(3):
        sp = cos(g[i].tolist(), pos[i].tolist())
        negs = [cos(g[i].tolist(), hn[i, j].tolist()) for j in range(2) if mask[i, j]]
        e_hn = sum(math.exp(s) for s in negs) / len(negs)
        e_b = sum(math.exp(float(gn[i] @ gn[j])) for j in range(3) if y[j] != y[i])
        per.append(-math.log(math.exp(sp) / (math.exp(sp) + e_hn + e_b)))
    terms = rgcl_loss(g, y, pos, hn, hard_neg_mask=mask)
    assert terms["rgcl"].item() == pytest.approx(sum(per) / 3, rel=1e-5)
    assert set(terms) == {"loss", "rgcl", "pos_sim", "neg_sim"}
    # items without a positive are left out of the mean
    masked = rgcl_loss(g, y, pos, hn, hard_neg_mask=mask, pos_mask=torch.tensor([True, False, True]))
    assert masked["rgcl"].item() == pytest.approx((per[0] + per[2]) / 2, rel=1e-5)


def test_rgcl_triplet_by_hand():
    g = torch.tensor([[1.0, 0.0]])
    pos = torch.tensor([[1.0, 1.0]])
    hn = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    terms = rgcl_loss(g, torch.tensor([0]), pos, hn, form="triplet", margin=0.5)
    mean_hn = (0.0 + 1.0) / 2
    assert terms["rgcl"].item() == pytest.approx(max(0.0, 0.5 - 1 / math.sqrt(2) + mean_hn), rel=1e-5)
    with pytest.raises(ValueError, match="form"):
        rgcl_loss(g, torch.tensor([0]), pos, hn, form="nope")


def test_hybrid_loss():
    t = hybrid_loss(torch.tensor(2.0), torch.tensor(4.0), 0.25)
    assert t["loss"].item() == pytest.approx(0.75 * 2 + 0.25 * 4)
    with pytest.raises(ValueError, match="ce_weight"):
        hybrid_loss(torch.tensor(1.0), torch.tensor(1.0), 1.5)
