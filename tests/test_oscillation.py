import numpy as np

from ndgm.analysis import detect_two_bands, monotone_after


def test_two_bands_found_on_noisy_period_two():
    rs = np.random.RandomState(0)
    t = np.arange(1000)
    x = 1.1 + 0.03 * np.where(t % 2 == 0, 1, -1) + 0.005 * rs.randn(1000)
    b = detect_two_bands(x)
    assert b.found and abs(b.high_centre - 1.13) < 2e-3 and abs(b.low_centre - 1.07) < 2e-3
    assert b.alternation > 0.99 and b.overlap_gap > 0


def test_no_bands_in_noise_or_constant_or_monotone():
    rs = np.random.RandomState(1)
    assert not detect_two_bands(rs.randn(1000)).found
    assert not detect_two_bands(np.ones(100)).found
    assert not detect_two_bands(np.linspace(1, 0, 100)).found
    assert not detect_two_bands(np.array([1.0, np.nan, 2.0, 1.0])).found


def test_monotone_after():
    assert monotone_after(np.array([1.0, 2.0, 3.0, 2.5, 2.0, 1.0])) == 2
    assert monotone_after(np.array([3.0, 2.0, 1.0])) == 0
    assert monotone_after(np.array([1.0, 2.0])) is None
    assert monotone_after(np.array([3.0, 3.0, 1.0]), strict=True) == 1
