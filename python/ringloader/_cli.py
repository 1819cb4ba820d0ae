"""Console entry points of the wheel: `ringloader-imagefolder`, `ringloader-pack` and
`ringloader-bench` in a virtualenv's bin/ exec the native programs the wheel carries in
ringloader/bin/ (their shared libraries are bundled beside them by auditwheel).

`ringloader-bench --vs-pytorch` runs PyTorch's side with this interpreter (the venv's, where
`pip install ringloader[torch]` put torch) and the pytorch_bench.py shipped beside the program
(`--python` names another).
"""
import os
import signal
import sys

_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")


def _exec(name):
    exe = os.path.join(_BIN, name)
    if not os.path.exists(exe):
        sys.stderr.write(f"{name}: this ringloader installation has no {exe} (a build without the "
                         "command-line programs)\n")
        raise SystemExit(127)
    if not os.access(exe, os.X_OK):
        sys.stderr.write(f"{name}: {exe} is not executable (reinstall ringloader)\n")
        raise SystemExit(126)
    env = dict(os.environ)
    env["RINGLOADER_BENCH_PYTHON"] = sys.executable
    env["RINGLOADER_PYTORCH_SCRIPT"] = os.path.join(_BIN, "pytorch_bench.py")
    # Python ignores SIGPIPE and SIGXFSZ, and exec keeps ignored signals: without this,
    # `ringloader-bench ... | head` would run the whole grid after head has quit.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    os.execve(exe, [name] + sys.argv[1:], env)


def imagefolder():
    _exec("ringloader-imagefolder")


def pack():
    _exec("ringloader-pack")


def bench():
    _exec("ringloader-bench")
