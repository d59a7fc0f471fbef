"""Every `>>>` example in the package's docstrings runs and prints what it says (the house style's runnable
examples), with the code fences of the transformers docstring style taken out first."""

import doctest
import importlib
import pkgutil
import re

import pytest

import refusal_tokens

FENCE = re.compile(r"^\s*```(\w+)?\s*$", re.MULTILINE)
SLOW = {"refusal_tokens.classifiers.heads"}  # examples that load all-MiniLM-L6-v2


class FencedDocTestParser(doctest.DocTestParser):
    """Drops the ```python fences, which would otherwise be read as expected output."""

    def parse(self, string, name="<string>"):
        return super().parse(FENCE.sub("", string), name)


def _modules():
    for info in pkgutil.walk_packages(refusal_tokens.__path__, "refusal_tokens."):
        if not info.name.startswith("refusal_tokens.cli.__main__"):
            yield info.name


def _examples():
    finder = doctest.DocTestFinder(parser=FencedDocTestParser())
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples and test.name.startswith(name):
                marks = [pytest.mark.slow] if name in SLOW else []
                yield pytest.param(test, id=test.name, marks=marks)


@pytest.mark.parametrize("test", list(_examples()))
def test_docstring_example_runs(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
