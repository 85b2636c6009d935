import numpy as np
import pytest

from tfmeta.data import cache


class Counted:
    """A `compute` for `cached_arrays` that counts its calls."""

    def __init__(self, *arrays):
        self.arrays, self.calls = arrays, 0

    def __call__(self):
        self.calls += 1
        return self.arrays


@pytest.fixture
def cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENVIRONMENT_VARIABLE, str(tmp_path / "cache"))
    return tmp_path / "cache"


def arrays():
    return np.arange(12, dtype=np.float32).reshape(3, 4), np.array(["Korean/character03", "Tengwar/character25"])


def assert_same(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_an_entry_is_computed_once_then_read_back(cache_dir):
    compute = Counted(*arrays())
    first = cache.cached_arrays("demo", ("a", 1), compute)
    again = cache.cached_arrays("demo", ("a", 1), compute)
    assert compute.calls == 1 and len(list(cache_dir.glob("demo-*.npz"))) == 1
    assert_same(first, arrays())
    assert_same(again, arrays())
    cache.cached_arrays("demo", ("a", 2), compute)  # another key is another entry
    assert compute.calls == 2 and len(list(cache_dir.glob("demo-*.npz"))) == 2


def test_an_unreadable_entry_is_computed_anew_and_replaced(cache_dir):
    compute = Counted(*arrays())
    cache.cached_arrays("demo", ("a",), compute)
    [entry] = cache_dir.glob("demo-*.npz")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated, as by a full disk
    assert_same(cache.cached_arrays("demo", ("a",), compute), arrays())
    assert_same(cache.cached_arrays("demo", ("a",), compute), arrays())
    assert compute.calls == 2


def test_an_empty_variable_turns_the_cache_off(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENVIRONMENT_VARIABLE, "")
    monkeypatch.chdir(tmp_path)
    compute = Counted(*arrays())
    cache.cached_arrays("demo", ("a",), compute)
    cache.cached_arrays("demo", ("a",), compute)
    assert compute.calls == 2 and not list(tmp_path.rglob("*.npz"))


def test_a_cache_that_cannot_be_written_is_skipped(monkeypatch, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv(cache.ENVIRONMENT_VARIABLE, str(blocked / "cache"))
    compute = Counted(*arrays())
    assert_same(cache.cached_arrays("demo", ("a",), compute), arrays())
    assert compute.calls == 1 and [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_the_default_place_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "tfmeta"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / ".cache" / "tfmeta"
