"""The decision modules' docstring examples are part of their contract: run them."""

from __future__ import annotations

import doctest

import pytest

from driftloop.decision import cost, policy, signals


@pytest.mark.parametrize("module", [cost, policy, signals], ids=lambda module: module.__name__)
def test_examples_in_docstrings_hold(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
