"""What a worker sets up before any dataset code runs, as torch.utils.data's worker loop does:
`random`, `torch` and `numpy` seeded from (base seed, worker id), torch's `get_worker_info()`
answering, one thread for torch. The base seed derives from the epoch's seed (drawn at each
iter() from torch's generator when no `seed=` is given) and the epoch number, so
`torch.manual_seed(s)` reproduces a run and no two workers or epochs share draws.

The binding calls started() in each worker process: from the dataset's start hook, and before
worker_init_fn. A forked worker knows its epoch at start; a fork-server worker does not, and is
seeded at its first sample (seed_epoch()).

Then, as each batch of a map-style dataset starts, seed_batch() seeds the three again from
(loader seed, epoch, the batch's number, the batch's indices), each its own stream. torch gets reproducible draws from handing batches
to workers round-robin. Here workers claim batches as they come free, so a per-worker stream
would give a sample different draws from run to run. Keyed by the batch, the draws are the
same for any worker count, any scheduling, after a crash or a resume; samples within a batch
(an index drawn twice included) take successive draws of its stream. A worker_init_fn takes
the seeding over: its workers keep torch's per-worker streams, whatever it seeded. Streams
keep them too: which worker reads which part of a stream is fixed by the worker id.
"""
import hashlib
import os
import random
import sys

_state = None  # in a worker process: its WorkerState


class WorkerState:
    __slots__ = ("id", "num_workers", "loader_seed", "pid", "dataset", "seed", "user_seeds")

    def __init__(self, worker_id, num_workers, loader_seed, dataset):
        self.id, self.num_workers, self.loader_seed = worker_id, num_workers, loader_seed
        self.pid, self.dataset, self.seed = os.getpid(), dataset, None
        self.user_seeds = False  # a worker_init_fn ran: the RNGs are the user's from then on


def base_seed(loader_seed, epoch):
    """A 63-bit base seed for (loader seed, epoch), the range of torch's int64 random_()."""
    digest = hashlib.blake2b(f"ringloader-worker:{loader_seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _generate_state(base, worker_id):
    """numpy's seed for a worker: torch.utils.data._utils.worker._generate_state's values."""
    try:
        from torch.utils.data._utils.worker import _generate_state as torch_generate_state
        return torch_generate_state(base, worker_id)
    except ImportError:
        return _generate_state_without_torch(base, worker_id)


def _generate_state_without_torch(base, worker_id):
    """The same algorithm (numpy's SeedSequence hash, as torch adapts it), for a worker without torch."""
    mask = 0xFFFFFFFF
    hash_a = [0x43B0D7E5]

    def hash32(value):
        value = (value ^ hash_a[0]) & mask
        hash_a[0] = (hash_a[0] * 0x931E8875) & mask
        value = (value * hash_a[0]) & mask
        return (value ^ (value >> 16)) & mask

    def mix(x, y):
        r = ((0xCA01F9DD * x) & mask) - ((0x4973F715 * y) & mask)
        r &= mask
        return (r ^ (r >> 16)) & mask

    pool = [hash32(e) for e in (worker_id, base & mask, base >> 32, 0)]
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                pool[i_dst] = mix(pool[i_dst], hash32(pool[i_src]))
    hash_b = 0x8B51F9DD
    state = []
    for i_dst in range(4):
        v = (pool[i_dst] ^ hash_b) & mask
        hash_b = (hash_b * 0x58F38DED) & mask
        v = (v * hash_b) & mask
        state.append((v ^ (v >> 16)) & mask)
    return state


def current():
    """This process's WorkerState, or None (the training process, or before the start hook)."""
    s = _state
    return s if s is not None and s.pid == os.getpid() else None


def started(worker_id, num_workers, loader_seed, epoch, dataset):
    """In a worker, once per process: remember who it is and, when its epoch is known, seed."""
    global _state
    if current() is not None:
        return
    _state = WorkerState(worker_id, num_workers, loader_seed, getattr(dataset, "_user_dataset", dataset))
    if epoch >= 0:
        seed_epoch(epoch)


def pose_as(worker_id, num_workers, dataset):
    """In the child that learns a dataset's batch layout (_probe.py): answer get_worker_info() as
    worker `worker_id` would, seeded as for epoch 0 of loader seed 0."""
    global _state
    _state = WorkerState(worker_id, num_workers, 0, getattr(dataset, "_user_dataset", dataset))
    seed_epoch(0)


def seed_epoch(epoch, loader_seed=None):
    """Seeds this worker's random, torch and numpy for the epoch it starts in (torch's recipe:
    seed = base_seed + worker id; numpy from _generate_state(base_seed, worker id))."""
    s = current()
    if s is None or s.seed is not None:
        return
    base = base_seed(s.loader_seed if loader_seed is None else loader_seed, epoch)
    s.seed = base + s.id
    random.seed(s.seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
        torch.manual_seed(s.seed)
        from torch.utils.data._utils import worker as torch_worker
        torch_worker._worker_info = torch_worker.WorkerInfo(id=s.id, num_workers=s.num_workers, seed=s.seed,
                                                            dataset=s.dataset)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(_generate_state(base, s.id))


def seed_batch(loader_seed, epoch, batch, batch_key):
    """Seeds random, torch's CPU generator and numpy's global state for one batch, from (loader
    seed, epoch, the batch's number in the epoch, a hash of its indices), each its own stream
    (as torch seeds numpy apart from random and torch). The seed is the batch's own (without
    seed=, each iter() draws one). About 25 us a batch; torch.manual_seed would also seed CUDA's
    generators (97 us)."""
    s = current()
    if s is None or s.user_seeds:
        return
    digest = hashlib.blake2b(b"ringloader-batch:%d:%d:%d:%d" % (loader_seed, epoch, batch, batch_key),
                             digest_size=24).digest()
    random.seed(int.from_bytes(digest[:8], "little"))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.default_generator.manual_seed(int.from_bytes(digest[8:16], "little") >> 1)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed((int.from_bytes(digest[16:20], "little"), int.from_bytes(digest[20:24], "little")))


def call_init_fn(fn, dataset, worker_id):
    """worker_init_fn(worker_id), after the seeding it would see under torch."""
    from . import _ringloader as core
    t = core.get_worker_info()  # (id, num_workers, loader seed, pid, epoch), set by the binding
    if t is not None:
        started(t[0], t[1], t[2], t[4], dataset)
    s = current()
    if s is not None:
        s.user_seeds = True
    fn(worker_id)
