"""pictures.py: the `--save-pairs` picture of evaluated pairs, written atomically."""

import pytest
import torch

from siamese_bench.datasets import load_dataset
from siamese_bench.episodes import ClassIndex, sample_episodes
from siamese_bench.model import SiameseModel
from siamese_bench.pictures import save_pairs
from siamese_bench.results import remove_stale_temps


def test_an_interrupted_pairs_picture_leaves_no_file_and_a_killed_one_a_recognised_temp(
    tmp_path, interrupt_savefig
):
    """Ctrl-C while the PNG is written leaves neither the picture nor a temp file; the temp file a kill on the
    spot would leave is one that `remove_stale_temps` removes."""
    digits = load_dataset("digits")["all"]
    index = ClassIndex.build(digits, ["5", "6", "7", "8", "9"])
    episodes = sample_episodes(index, n_way=3, k_shot=1, n_query=1, n_episodes=2, seed=0)
    torch.manual_seed(0)
    model = SiameseModel.build("small-cnn", "koch", in_channels=1, image_size=8)
    out = tmp_path / "pairs"
    path = save_pairs(model, digits, episodes, 4, out / "cell.png")
    assert path == out / "cell.png" and path.read_bytes()[:4] == b"\x89PNG"
    temps = interrupt_savefig(out)
    with pytest.raises(KeyboardInterrupt):
        save_pairs(model, digits, episodes, 4, out / "other.png")
    assert sorted(p.name for p in out.iterdir()) == ["cell.png"]
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / temps[0]).write_bytes(b"")
    assert [p.name for p in remove_stale_temps(tmp_path / "killed")] == temps
