"""Smoke test of every backbone x head: shapes, finite outputs, and a few Adam steps on one fixed batch lower
the loss. Small binary "stroke-like" images (8x8 or 16x16), batch 8. resnet34 is paired with one head only
and resnet50 with none (slow on CPU; both are shape-checked in tests/backbones)."""

import pytest
import torch

from siamese_bench.backbones import BACKBONES
from siamese_bench.heads import HEADS

SIZE = {"small-cnn": 16, "koch": 8, "conv4": 16, "resnet18": 8, "resnet34": 8}
BATCH = 8
STEPS = 6
# The koch backbone's 4096 sigmoid outputs barely depend on the input at init (bias-dominated), and all are
# positive: Adam's first sign-like step at 1e-3 moves every head weight coherently and overshoots, so the
# loss on one batch is not monotone. A small learning rate makes the descent check meaningful.
LR = {"koch": 1e-5}
FAST_BACKBONES = ["small-cnn", "koch", "conv4", "resnet18"]
# resnet50 is only shape-checked (tests/backbones): one training step there costs seconds on a busy CPU.
# l2 / cosine have no parameters and refuse to train (evaluation-only baselines: tests/heads/test_nearest.py).
EVAL_ONLY_HEADS = ("cosine", "l2")
COMBOS = [(b, h) for b in FAST_BACKBONES for h in HEADS.names() if h not in EVAL_ONLY_HEADS] + [
    ("resnet34", "contrastive")
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Single intra-op thread: these small convs gain nothing from threads, and on a shared CPU
    oversubscribed OpenMP threads make them several times slower. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _loss(head, backbone, batch):
    if head.objective == "pair":
        xa, xb, same = batch
        return head.loss(backbone(xa), backbone(xb), same)
    xa, xp, xn, la, ln = batch
    emb = backbone(torch.cat([xa, xp, xn]))  # one forward: BatchNorm sees the whole batch
    ea, ep, en = emb.split(BATCH)
    return head.loss(ea, ep, en, la, ln)


def _batch(objective, size, g):
    def images():
        return (torch.rand(BATCH, 1, size, size, generator=g) < 0.2).float()

    if objective == "pair":
        return images(), images(), torch.arange(BATCH) % 2 == 0
    la = torch.arange(BATCH) % 4
    return images(), images(), images(), la, (la + 1) % 4


@pytest.mark.parametrize(("backbone_name", "head_name"), COMBOS)
def test_backbone_head_trains(backbone_name, head_name):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    backbone = BACKBONES.get(backbone_name)(1, SIZE[backbone_name])
    head = HEADS.get(head_name)(backbone.out_dim)
    batch = _batch(head.objective, SIZE[backbone_name], g)

    emb = backbone(batch[0])
    assert emb.shape == (BATCH, backbone.out_dim) and torch.isfinite(emb).all()
    sim = head.similarity(emb, emb.flip(0))
    assert sim.shape == (BATCH,) and torch.isfinite(sim).all()
    with torch.no_grad():
        scores = head.score(emb[:6].view(2, 3, -1), emb[:8].view(2, 4, -1))
    assert scores.shape == (2, 3, 4) and torch.isfinite(scores).all()

    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=LR.get(backbone_name, 1e-3))
    initial = _loss(head, backbone, batch)
    assert initial.dim() == 0 and torch.isfinite(initial) and initial.item() > 0
    for _ in range(STEPS):
        opt.zero_grad()
        loss = _loss(head, backbone, batch)
        loss.backward()
        opt.step()
    final = _loss(head, backbone, batch)
    assert torch.isfinite(final)
    assert final.item() < initial.item(), f"{backbone_name} x {head_name}: {initial.item()} -> {final.item()}"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("backbone_name", "head_name"), [*COMBOS, ("resnet50", "koch")])
def test_cuda_matches_cpu_and_trains_fp32_and_bf16(backbone_name, head_name):
    """The same weights give the same similarities on CUDA as on CPU (up to cuDNN's TF32 convolutions), a few
    fp32 steps on CUDA lower the loss, and a bf16-autocast step gives a finite loss and finite gradients."""
    torch.manual_seed(0)
    size = SIZE.get(backbone_name, 8)
    backbone = BACKBONES.get(backbone_name)(1, size).eval()
    head = HEADS.get(head_name)(backbone.out_dim).eval()
    batch = _batch(head.objective, size, torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = head.similarity(backbone(batch[0]), backbone(batch[1]))
        backbone.cuda(), head.cuda()
        gpu = head.similarity(backbone(batch[0].cuda()), backbone(batch[1].cuda()))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=2e-2, atol=2e-3)

    backbone.train(), head.train()
    batch = tuple(t.cuda() for t in batch)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=LR.get(backbone_name, 1e-3))
    initial = _loss(head, backbone, batch)
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(head, backbone, batch).backward()
        opt.step()
    final = _loss(head, backbone, batch)
    assert final.item() < initial.item(), f"{backbone_name} x {head_name}: {initial.item()} -> {final.item()}"

    opt.zero_grad()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = _loss(head, backbone, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in params if p.grad is not None)
