"""README stays true: its sample output is what its first command prints
today (scripts/readme_sample.py made it), and its commands are the ones CI
runs."""
import doctest
import importlib.util
import os
import re

import pytest

from conftest import SRC

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "readme_sample.py")

pytestmark = pytest.mark.skipif(not os.path.exists(SCRIPT),
                                reason="scripts/ not in this copy of the tree (sanitizer lane)")


@pytest.fixture(scope="module")
def sample():
    spec = importlib.util.spec_from_file_location("readme_sample", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_sample_is_current(sample):
    block = sample.readme_block(_readme())
    assert block, "README has no sample block"
    fresh, status = sample.sample_output(pythonpath=SRC)
    assert status == 1                      # the example leaks
    old, new = sample.structure(block), sample.structure(fresh)
    # what the comparison covers, so that an empty structure never passes
    kinds = {item[0] for item in new}
    assert {"verdict", "objects", "group", "held by", "frame", "fix"} <= kinds, new
    assert old == new, "README's sample is stale: run python scripts/readme_sample.py"
    # paths relative to the checkout, never this machine's
    assert ROOT not in block and "examples/leaky_app.py:" in block


def test_structure_sees_a_changed_report(sample):
    block = sample.readme_block(_readme())
    base = sample.structure(block)
    for old, new in (("global-collection", "closure"), ("1 per run", "2 per run"),
                     ("leaky_app.py:28 in parse", "leaky_app.py:29 in parse"),
                     ("_audit_log (list)", "_audit_log (dict)")):
        assert old in block
        assert sample.structure(block.replace(old, new, 1)) != base, old
    # sizes and block counts may change between runs and versions
    assert sample.structure(re.sub(r"\d+ bytes", "9 bytes", block)) == base


def test_script_examples(sample):
    failed, tried = doctest.testmod(sample, verbose=False)
    assert tried >= 4 and failed == 0


def test_commands_at_the_top():
    text = _readme()
    fence = text.index("```\n")
    top = text[fence + 4:text.index("```", fence + 4)].splitlines()
    assert top[0] == "python3 -m venv .venv && . .venv/bin/activate"
    assert top[1] == "pip install . && memhound leaks examples/leaky_app.py:handle_request"
    assert top[2] == "pip install '.[test]' && python -m pytest -q -n 2 tests"
    # CI runs the first `python -m pytest` line of README: that one, and only it
    assert re.findall(r"python -m pytest .*", text) == ["python -m pytest -q -n 2 tests"]
    # the benchmark tables live in docs/benchmarks.md, README links them
    assert "<!-- bench:start -->" not in text and "docs/benchmarks.md" in text
    assert not re.search(r"Issue \d+:.*missed", text)
