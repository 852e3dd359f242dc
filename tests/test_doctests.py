"""The examples in memhound.tracing's docstrings are real and pass."""
import doctest

import memhound
from memhound import tracing


def test_docstring_examples():
    if memhound.is_tracing():
        memhound.stop()
    result = doctest.testmod(tracing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 30
    assert result.failed == 0
    assert not memhound.is_tracing()
