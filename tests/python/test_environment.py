"""The suite runs against the PyTorch that python/requirements-dev.txt pins (.venv/, made by
.ci/install-deps), not whatever torch happens to be importable."""
import os
import re

import pytest

REQ = os.path.join(os.path.dirname(__file__), "..", "..", "python", "requirements-dev.txt")


def pins():
    with open(REQ) as f:
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", f.read(), re.M))


@pytest.mark.parametrize("module,dist", [("torch", "torch"), ("torchvision", "torchvision"),
                                         ("numpy", "numpy"), ("PIL", "Pillow")])
def test_pinned_version_is_the_one_imported(module, dist):
    mod = __import__(module)
    version = mod.__version__.split("+")[0]  # torch's local tag, e.g. 2.14.1+cu130
    assert version == pins()[dist], f"{module} {mod.__version__} imported from {mod.__file__}; {REQ} pins {pins()[dist]}"
