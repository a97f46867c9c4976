"""The public API: every advertised name resolves, and `import distilkit` stays light."""

import subprocess
import sys

import pytest

import distilkit


@pytest.mark.parametrize("name", sorted(distilkit._EXPORTS))
def test_every_public_name_resolves(name):
    assert getattr(distilkit, name) is not None


def test_import_is_light():
    code = "import sys, distilkit; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_unknown_name():
    with pytest.raises(AttributeError):
        distilkit.not_a_thing  # noqa: B018
