"""Holding batches never fails: list(loader), keeping every target of a validation pass,
keeping every batch of an epoch. Zero-copy while the loop lets go; past what the ring can spare
the next batches are handed out as copies (counted in stats()); labels and indices are copied
out of the slot, so keeping them pins nothing."""
import pytest
import torch

import ringloader as rl


class Numbers(rl.Dataset):
    schema = {"image": ("uint8", (64, 64, 3)), "label": ("int64", ())}

    def __len__(self):
        return 50

    def get(self, index, out):
        out["image"][...] = index % 256
        out["label"][...] = index


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_list_of_the_loader_holds_every_batch(workers):
    loader = rl.DataLoader(Numbers(), batch_size=4, num_workers=workers)
    for _ in range(2):  # the second epoch reuses the slots the copies let go
        batches = list(loader)
        assert len(batches) == 13
        assert [int(y) for _, y in batches for y in y] == list(range(50))
        assert all(int(x[k, 0, 0, 0]) == int(y[k]) for x, y in batches for k in range(len(y)))
    copied = loader.stats()["copied_batches"]
    assert 0 < copied <= 2 * 13 and loader.stats()["batches"] == 26
    del batches


@pytest.mark.parametrize("workers", [0, 2])
def test_a_training_loop_that_lets_go_copies_nothing(workers):
    loader = rl.DataLoader(Numbers(), batch_size=4, num_workers=workers)
    for _ in range(2):
        for x, y in loader:
            pass
    assert loader.stats()["copied_batches"] == 0


def test_keeping_labels_and_indices_pins_no_slot():
    loader = rl.DataLoader(Numbers(), batch_size=4, num_workers=2)
    targets, indices = [], []
    for b in loader:
        targets.append(b[1])
        indices.append(b.indices)
    assert torch.cat(targets).tolist() == list(range(50))
    assert loader.stats()["copied_batches"] == 0  # the labels are not views of the slot
