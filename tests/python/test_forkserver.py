"""The fork-server start method from a threaded interpreter: rl.init() first thing, then torch
and threads; the workers come from the single-threaded server, and the dataset reaches it
pickled (a module-level class and its arguments)."""
import os
import subprocess
import sys
import textwrap


def test_forkserver_from_a_threaded_interpreter(tmp_path, image_folder):
    (tmp_path / "mydata.py").write_text(textwrap.dedent("""
        import ringloader as rl

        class Squares(rl.Dataset):
            schema = {"v": ("int64", ())}
            def __init__(self, n): self.n = n
            def __len__(self): return self.n
            def get(self, index, out): out["v"][...] = index * index

        class Count(rl.IterableDataset):
            schema = {"v": ("int64", ())}
            def __iter__(self): return iter(range(10))
    """))
    script = textwrap.dedent(f"""
        import os, threading, time, warnings
        import ringloader as rl
        rl.init()                                   # first thing: the server is forked now
        import torch, mydata
        stop = threading.Event()
        busy = [threading.Thread(target=lambda: [time.sleep(0.001) for _ in iter(stop.is_set, True)]) for _ in range(3)]
        for t in busy: t.start()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = rl.DataLoader(mydata.Squares(50), batch_size=8, num_workers=2, start_method="forkserver")
            got = sorted(v for (b,) in loader for v in b.tolist())
            assert got == [i * i for i in range(50)], got
            assert loader.stats()["threaded_forks"] == 0
            imgs = rl.DataLoader(rl.ImageFolder({image_folder!r}, size=32), batch_size=8, num_workers=2,
                                 start_method="forkserver")
            n = sum(len(y) for _, y in imgs)
            assert n == 40, n
            # A relative path given after a chdir reaches the server (whose directory is the
            # one rl.init() ran in) as the folder the program meant, or the spawner is rebuilt forever.
            os.chdir(os.path.dirname({image_folder!r}))
            rel = rl.DataLoader(rl.ImageFolder(os.path.basename({image_folder!r}), size=32), batch_size=8,
                                num_workers=1, start_method="forkserver", timeout=60)
            assert sum(len(y) for _, y in rel) == 40
            # An iterable dataset cannot go through the server: said at once, naming what can.
            try:
                rl.DataLoader(mydata.Count(), batch_size=4, num_workers=1, start_method="forkserver")
                raise AssertionError("an IterableDataset was accepted by the fork server")
            except rl.ConfigError as e:
                assert "map-style" in str(e) and 'start_method="fork"' in str(e), e
            # The plain fork method from this threaded process warns once, naming the remedy.
            direct = rl.DataLoader(mydata.Squares(16), batch_size=8, num_workers=1)
            assert sum(len(b) for (b,) in direct) == 16
        texts = [str(w.message) for w in caught]
        assert any("rl.init()" in t and "forkserver" in t for t in texts), texts
        stop.set()
        for t in busy: t.join()
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def run_script(tmp_path, body, timeout=90):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                          cwd=str(tmp_path), env={**os.environ, "RINGLOADER_LOG_LEVEL": "off"})


def test_a_class_the_server_cannot_unpickle_fails_once_naming_it(tmp_path):
    """A dataset class defined in __main__ after rl.init(): the server (forked before it existed)
    cannot unpickle it: one error naming it, not spawners rebuilt forever under a waiting loop."""
    out = run_script(tmp_path, """
        import time
        import ringloader as rl
        rl.init()

        class Late(rl.Dataset):
            schema = {"v": ("int64", ())}
            def __len__(self): return 8
            def get(self, index, out): out["v"][...] = index

        t0 = time.monotonic()
        try:
            list(rl.DataLoader(Late(), batch_size=4, num_workers=2, start_method="forkserver"))
            print("NO ERROR")
        except rl.ConfigError as e:
            print("CONFIGERROR", round(time.monotonic() - t0, 1), e)
    """)
    assert "CONFIGERROR" in out.stdout, out.stdout + out.stderr
    assert "cannot build the dataset" in out.stdout and "Late" in out.stdout and "before rl.init()" in out.stdout
    assert float(out.stdout.split()[1]) < 30, out.stdout


def test_a_dataset_whose_recipe_is_megabytes_reaches_the_server(tmp_path):
    """Requests over 64 KiB were cut (endless rebuilds); a few hundred KiB did not send at all."""
    (tmp_path / "bigdata.py").write_text(textwrap.dedent("""
        import ringloader as rl

        class Big(rl.Dataset):
            schema = {"v": ("int64", ())}
            def __init__(self, table): self.table = table
            def __len__(self): return len(self.table)
            def get(self, index, out): out["v"][...] = self.table[index]
    """))
    out = run_script(tmp_path, """
        import ringloader as rl
        rl.init()
        import bigdata
        table = list(range(400_000))            # a 2 MB pickle
        loader = rl.DataLoader(bigdata.Big(table), batch_size=50_000, num_workers=2, start_method="forkserver",
                               timeout=60)
        print("SUM", sum(int(b.sum()) for (b,) in loader) == sum(table))
    """)
    assert "SUM True" in out.stdout, out.stdout + out.stderr


def test_a_spawner_that_dies_building_the_dataset_fails_once(tmp_path):
    """The server's spawner dies (os._exit, a crash) while it unpickles the dataset: the loader raises
    WorkerError after a few spawners instead of forking new ones forever."""
    out = run_script(tmp_path, """
        import os, time
        import ringloader as rl

        class Dies(rl.Dataset):
            schema = {"v": ("int64", ())}
            def __init__(self): self.main = os.getpid()
            def __setstate__(self, d):
                self.__dict__.update(d)
                if os.getpid() != self.main:
                    os._exit(7)  # in the server's spawner, rebuilding it
            def __len__(self): return 8
            def get(self, index, out): out["v"][...] = index

        rl.init()
        t0 = time.monotonic()
        try:
            list(rl.DataLoader(Dies(), batch_size=4, num_workers=2, start_method="forkserver"))
            print("NO ERROR")
        except rl.WorkerError as e:
            print("WORKERERROR", round(time.monotonic() - t0, 1), e)
    """)
    assert "WORKERERROR" in out.stdout, out.stdout + out.stderr
    assert "died 3 times in a row" in out.stdout and 'start_method="fork"' in out.stdout
    assert float(out.stdout.split()[1]) < 30, out.stdout
