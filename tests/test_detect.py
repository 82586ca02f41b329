"""Tests for pipeline.detect: EARS against R's surveillance::earsC fixtures, the share test,
and the CSV reader."""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import math
import time
from pathlib import Path

import pytest
from scipy.stats import hypergeom

from pipeline.detect import (
    DetectionResult,
    ears,
    fisher_greater,
    read_counts_csv,
    share_test,
)

EARS_DIR = Path(__file__).parent / "data" / "ears"
START = datetime.date(2024, 1, 1)


def _days(n: int, start: datetime.date = START) -> list[datetime.date]:
    return [start + datetime.timedelta(days=i) for i in range(n)]


def _cases() -> list[dict[str, str]]:
    with (EARS_DIR / "cases.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _rows(name: str) -> list[dict[str, str]]:
    with (EARS_DIR / f"{name}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- EARS vs R


def test_fixtures_cover_the_interesting_cases() -> None:
    """The R fixtures include alarms and R's NA results for every method."""
    seen = {m: {"TRUE": 0, "NA": 0} for m in ("c1", "c2", "c3")}
    for case in _cases():
        for row in _rows(case["name"]):
            for m in seen:
                if row[f"alarm_{m}"] in seen[m]:
                    seen[m][row[f"alarm_{m}"]] += 1
    assert len(_cases()) >= 10
    assert all(seen[m]["TRUE"] > 0 for m in seen)
    assert seen["c3"]["NA"] > 0


@pytest.mark.parametrize("method", ["c1", "c2", "c3"])
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_ears_matches_r_surveillance(case: dict[str, str], method: str) -> None:
    rows = _rows(case["name"])
    observed = [float(r["observed"]) for r in rows]
    alpha = None if case["alpha"] == "NA" else float(case["alpha"])
    got = ears(
        _days(len(observed)),
        observed,
        method,  # type: ignore[arg-type]
        alpha=alpha,
        baseline=int(case["baseline"]),
        min_sigma=float(case["min_sigma"]),
    )
    assert len(got) == len(rows)
    for row, res in zip(rows, got, strict=True):
        want_ub, want_alarm = row[f"ub_{method}"], row[f"alarm_{method}"]
        where = f"{case['name']} {method} day {row['t']}"
        assert res.observed == float(row["observed"]), where
        if want_ub in ("none", "NA"):  # no history, or R's NA/NaN
            assert res.upper_bound is None, where
            assert res.alarm is False, where
            assert want_alarm in ("none", "NA"), where
            continue
        assert res.upper_bound is not None, where
        assert math.isclose(res.upper_bound, float(want_ub), rel_tol=1e-9, abs_tol=1e-12), (
            where,
            res.upper_bound,
            want_ub,
        )
        assert res.alarm is (want_alarm == "TRUE"), where
        assert res.alarm == (res.observed > res.upper_bound), where


def test_ears_history_requirements() -> None:
    counts = [3.0, 4.0, 5.0, 3.0, 4.0, 5.0, 4.0, 3.0, 5.0, 4.0, 30.0, 4.0, 3.0]
    for method, first in (("c1", 7), ("c2", 9), ("c3", 11)):
        res = ears(_days(len(counts)), counts, method)  # type: ignore[arg-type]
        assert all(
            r.upper_bound is None and r.statistic is None and not r.alarm for r in res[:first]
        ), method
        assert res[first].upper_bound is not None, method


def test_ears_c1_spike_and_statistic() -> None:
    counts = [3.0, 4.0, 5.0, 3.0, 4.0, 5.0, 4.0, 30.0]
    res = ears(_days(8), counts, "c1")[-1]
    mean = sum(counts[:7]) / 7
    sd = math.sqrt(sum((c - mean) ** 2 for c in counts[:7]) / 6)
    assert res.baseline_mean == pytest.approx(mean)
    assert res.statistic == pytest.approx((30 - mean) / sd)
    assert res.alarm and res.p_value is None


def test_ears_flat_baseline_matches_r_zero_sd_rule() -> None:
    """With zero spread the bound is the baseline mean, as in R (no NA for C1/C2)."""
    res = ears(_days(8), [2.0] * 7 + [3.0], "c1")[-1]
    assert res.upper_bound == 2.0 and res.alarm and res.statistic is None
    res = ears(_days(8), [2.0] * 8, "c1")[-1]
    assert res.upper_bound == 2.0 and not res.alarm
    # min_sigma gives a floor: 2 + qnorm(0.999) * 1
    res = ears(_days(8), [2.0] * 7 + [3.0], "c1", min_sigma=1.0)[-1]
    assert res.upper_bound == pytest.approx(2 + 3.090232306167813) and not res.alarm


def test_ears_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="consecutive"):
        ears([START, START + datetime.timedelta(days=2)], [1.0, 2.0], "c1")
    with pytest.raises(ValueError, match="2 dates but 3"):
        ears(_days(2), [1.0, 2.0, 3.0], "c1")
    with pytest.raises(ValueError, match="unknown EARS method"):
        ears(_days(2), [1.0, 2.0], "c4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline"):
        ears(_days(2), [1.0, 2.0], "c1", baseline=2)
    with pytest.raises(ValueError, match="finite"):
        ears(_days(2), [1.0, math.nan], "c1")
    assert ears([], [], "c2") == []


# --------------------------------------------------------------------------- share test


def test_fisher_greater_matches_scipy() -> None:
    cases = [
        (5, 20, 10, 140),
        (0, 10, 3, 50),
        (30, 200, 70, 700),
        (7, 7, 0, 9),
        (1, 10, 0, 100),
        (60, 200, 70, 700),
        (1600, 5000, 10500, 35000),
        (1400, 5000, 10500, 35000),
        (2, 3, 40, 41),
        (0, 0, 5, 10),
    ]
    for x, n, b, m in cases:
        want = hypergeom.sf(x - 1, n + m, x + b, n)
        assert fisher_greater(x, n, b, m) == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_share_test_handles_a_year_of_large_totals_quickly() -> None:
    totals = [5000 + (i * 37) % 400 for i in range(365)]
    counts = [t // 10 + (i * 13) % 25 for i, t in enumerate(totals)]
    start = time.perf_counter()
    res = share_test(_days(365), counts, totals)
    assert len(res) == 365 and res[-1].p_value is not None
    assert time.perf_counter() - start < 5.0


def test_fisher_p_value_falls_as_the_count_rises() -> None:
    for n, b, m in [(40, 12, 300), (7, 0, 20), (150, 75, 150)]:
        ps = [fisher_greater(k, n, b, m) for k in range(n + 1)]
        assert all(a >= c for a, c in itertools.pairwise(ps))


def _steady(days: int, count: int, total: int) -> tuple[list[int], list[int]]:
    return [count] * days, [total] * days


def test_share_test_ignores_volume_but_catches_share_jumps() -> None:
    counts, totals = _steady(9, 10, 100)
    # day 10: twice the volume, same 10% share; day 11: same volume, share triples
    counts += [20, 30]
    totals += [200, 100]
    res = share_test(_days(11), counts, totals)
    assert [r.upper_bound is None for r in res] == [True] * 9 + [False, False]
    volume_day, jump_day = res[9], res[10]
    assert volume_day.observed == pytest.approx(0.1)
    assert volume_day.baseline_mean == pytest.approx(0.1)
    assert not volume_day.alarm and volume_day.p_value is not None
    assert volume_day.p_value > 0.3
    assert jump_day.alarm and jump_day.p_value is not None and jump_day.p_value < 1e-6
    # EARS on raw counts does flag the volume day: that is what the share test is for.
    assert ears(_days(11), counts, "c2")[9].alarm


def test_share_test_bound_is_consistent_with_p_value() -> None:
    counts, totals = _steady(9, 10, 100)
    for today in range(0, 41):
        r = share_test(_days(10), [*counts, today], [*totals, 100])[-1]
        assert r.p_value is not None and r.upper_bound is not None
        assert r.alarm == (r.p_value < 0.01) == (r.observed > r.upper_bound)


def test_share_test_windows_and_untestable_days() -> None:
    counts = [1, 2, 1, 0, 2, 1, 1, 5, 9, 0]
    totals = [10, 10, 10, 10, 10, 10, 10, 10, 10, 0]
    c2 = share_test(_days(10), counts, totals)
    c1 = share_test(_days(10), counts, totals, guard=0)
    assert c2[8].upper_bound is None  # needs 7 + 2 days of history
    assert c1[8].baseline_mean == pytest.approx(sum(counts[1:8]) / 70)
    assert c1[8].alarm  # 9/10 against ~1.7/10
    assert c2[9].upper_bound is None and not c2[9].alarm  # total 0: nothing to test
    zero_base = share_test(_days(10), [0] * 9 + [1], [0] * 9 + [5])[-1]
    assert zero_base.upper_bound is None and zero_base.baseline_mean is None


def test_share_test_flat_zero_baseline_is_not_hair_trigger() -> None:
    """0 of 700 before, 1 of 100 today: the exact test does not alarm on a single item."""
    counts, totals = _steady(9, 0, 100)
    r = share_test(_days(10), [*counts, 1], [*totals, 100])[-1]
    assert not r.alarm and r.statistic is not None


def test_share_test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        share_test(_days(2), [1, 5], [2, 4])
    with pytest.raises(ValueError, match="whole counts"):
        share_test(_days(2), [1, 0.5], [2, 4])
    with pytest.raises(ValueError, match="consecutive"):
        share_test([START, START], [1, 1], [2, 2])


# --------------------------------------------------------------------------- CSV


def test_read_counts_csv_with_and_without_totals(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_text(
        "\ufeffdate,count,total\n2024-01-01,3,10\n2024-01-02, 4 ,12\n\n", encoding="utf-8"
    )
    dates, counts, totals = read_counts_csv(path)
    assert dates == _days(2)
    assert counts == [3.0, 4.0] and totals == [10.0, 12.0]
    dates, counts, totals = read_counts_csv(io.StringIO("Date,Count\n2024-01-01,2.5\n"))
    assert dates == _days(1) and counts == [2.5] and totals is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"<stream>, line 1: expected header"),
        ("day,n\n2024-01-01,1\n", r"line 1: expected header"),
        ("date,count\n2024-01-01,1\n2024-13-02,1\n", r"line 3: bad date '2024-13-02'"),
        ("date,count\n2024-01-01,x\n", r"line 2: bad count 'x'"),
        ("date,count\n2024-01-01,-1\n", r"line 2: bad count '-1'"),
        ("date,count\n2024-01-01,nan\n", r"line 2: bad count 'nan'"),
        ("date,count\n2024-01-01\n", r"line 2: expected 2 fields, got 1"),
        ("date,count\n2024-01-01,1\n2024-01-03,1\n", r"line 3: date 2024-01-03 does not follow"),
        ("date,count\n2024-01-01,1\n2024-01-01,1\n", r"line 3: date 2024-01-01 does not follow"),
        ("date,count,total\n2024-01-01,5,4\n", r"line 2: count 5 exceeds total 4"),
    ],
)
def test_read_counts_csv_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_counts_csv(io.StringIO(text))


def test_read_counts_csv_error_names_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("date,count\n2024-01-01,1\n2024-01-02,oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv, line 3: bad count 'oops'"):
        read_counts_csv(str(path))


def test_csv_feeds_detectors_end_to_end() -> None:
    lines = ["date,count,total"] + [
        f"{d.isoformat()},{c},{t}"
        for d, c, t in zip(_days(12), [5] * 11 + [40], [50] * 11 + [60], strict=True)
    ]
    dates, counts, totals = read_counts_csv(io.StringIO("\n".join(lines)))
    assert totals is not None
    assert ears(dates, counts, "c1")[-1].alarm
    shared = share_test(dates, counts, totals)
    assert isinstance(shared[-1], DetectionResult) and shared[-1].alarm
