"""`--save-pairs N`: a PNG grid of evaluated pairs (query | support image) with the head's similarity."""

from __future__ import annotations

from pathlib import Path

import torch

from siamese_bench.results import atomic_write


def save_pairs(model, ds, episodes, n: int, path: Path) -> Path:
    """Draw the first `n` (query, support) pairs of `episodes`: alternately the query's own class (same) and
    the next class (different), each titled with its similarity. Needs matplotlib (the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--save-pairs needs matplotlib: pip install 'siamese-bench[plot]'") from None
    k, q, nway = episodes.k_shot, episodes.n_query, episodes.n_way
    rows = []
    for e in range(len(episodes)):
        for j in range(nway * q):
            c = j // q
            for other in (c, (c + 1) % nway):
                rows.append((int(episodes.query[e, j]), int(episodes.support[e, other * k]), other == c))
                if len(rows) == n:
                    break
            if len(rows) == n:
                break
        if len(rows) == n:
            break
    a = torch.tensor([r[0] for r in rows], device=ds.device)
    b = torch.tensor([r[1] for r in rows], device=ds.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = torch.cat([ds.images[a], ds.images[b]]).float().div_(255)
        e = model.embed(x).float()
        sim = model.head.similarity(e[: len(rows)], e[len(rows) :]).cpu()
    model.train(was_training)
    cols = 4
    lines = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(lines, cols * 2, figsize=(cols * 2 * 1.2, lines * 1.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (qa, sb, same) in enumerate(rows):
        r, c = divmod(i, cols)
        for side, idx in enumerate((qa, sb)):
            img = ds.images[idx].cpu()
            img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
            axes[r, 2 * c + side].imshow(img.numpy(), cmap="gray")
        axes[r, 2 * c].set_title(f"{'same' if same else 'diff'} {float(sim[i]):.2f}", fontsize=6, loc="left")
    path = Path(path)
    try:
        # atomically: an interrupted write leaves no half-written picture, and no temp file (or, killed on
        # the spot, one that `results.remove_stale_temps` recognises)
        atomic_write(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path
