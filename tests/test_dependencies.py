from __future__ import annotations

import pytest

from rag.dependencies import require
from rag.errors import DependencyMissing


def test_a_missing_package_says_what_to_install() -> None:
    with pytest.raises(DependencyMissing) as caught:
        require("no_such_pkg_xyz", needed_for="vLLM support", install="no-such-pkg")
    assert (
        str(caught.value) == "vLLM support needs the package no-such-pkg: pip install no-such-pkg"
    )


def test_a_present_package_is_returned() -> None:
    assert require("json", needed_for="x", install="y").dumps([1]) == "[1]"
