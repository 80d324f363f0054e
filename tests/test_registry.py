import pytest

from siamese_bench.registry import Registry, UnknownNameError


def test_register_get_names():
    r = Registry("widget")
    r.register("b")(2)
    r.register("a")(1)
    assert r.get("a") == 1 and r.names() == ["a", "b"] and "a" in r


def test_unknown_name_lists_valid_ones():
    r = Registry("widget")
    r.register("alpha")(1)
    with pytest.raises(UnknownNameError, match="unknown widget 'beta'; valid widgets: alpha"):
        r.get("beta")


def test_duplicate_name_fails():
    r = Registry("widget")
    r.register("a")(1)
    with pytest.raises(ValueError, match="duplicate widget name 'a'"):
        r.register("a")(2)
