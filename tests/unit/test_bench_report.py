"""The benchmarks' statistics, timestamp analysis and report output (not the benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import analysis
from bench.node_probe import histogram_summary
from bench.profile import summarize_stacks
from bench.report import format_table, write_results
from bench.stats import median_of_runs, percentile, ratio, summarize


def test_percentile_interpolates_between_order_statistics() -> None:
    values = [10.0, 0.0, 30.0, 20.0]
    assert percentile(values, 0) == 0.0
    assert percentile(values, 100) == 30.0
    assert percentile(values, 50) == 15.0
    assert percentile(values, 99) == pytest.approx(29.7)
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_summarize_reports_tail_and_handles_no_samples() -> None:
    samples = list(range(1, 101))
    summary = summarize(samples)
    assert summary["n"] == 100
    assert summary["p50"] == 50.5
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == 100
    assert summary["mean"] == 50.5
    assert summarize([]) == {
        "n": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
        "mean": None,
    }


def test_median_of_runs_keeps_every_run_and_recurses() -> None:
    runs = [
        {"cpu": 3.0, "name": "a", "inner": {"p99": 1.0}},
        {"cpu": 1.0, "name": "b", "inner": {"p99": 9.0}},
        {"cpu": 2.0, "name": "c", "inner": {"p99": 5.0}},
    ]
    combined = median_of_runs(runs)
    assert combined["cpu"] == 2.0
    assert combined["cpu_runs"] == [3.0, 1.0, 2.0]
    assert combined["inner"]["p99"] == 5.0
    assert combined["name"] == "a"
    counts = median_of_runs([{"late": 0}, {"late": 2}, {"late": 0}])
    assert counts["late"] == 0
    assert isinstance(counts["late"], int)


def test_ratio_guards_missing_values() -> None:
    assert ratio(3, 2) == 1.5
    assert ratio(1, 0) is None
    assert ratio(None, 2) is None


def test_timing_errors_are_zero_for_a_perfectly_paced_reply() -> None:
    # Lead 60 ms: frames 0-3 at once, then one every 20 ms.
    start = 100.0
    arrivals = [start] * 4 + [start + (k - 3) * 0.02 for k in range(4, 50)]
    errors = analysis.frame_timing_errors(arrivals, lead_ms=60)
    assert len(errors) == 50
    assert max(errors) == pytest.approx(0.0, abs=1e-9)


def test_timing_errors_show_a_stall_and_split_replies() -> None:
    start = 100.0
    reply = [start] * 4 + [start + (k - 3) * 0.02 for k in range(4, 30)]
    reply[20] += 0.007  # one frame 7 ms late
    second = [t + 5.0 for t in reply[:10]]  # a later reply: its own timeline
    errors = analysis.frame_timing_errors(reply + second, lead_ms=60)
    assert len(errors) == 40
    assert max(errors) == pytest.approx(7.0)
    assert sorted(errors)[-2] == pytest.approx(0.0, abs=1e-9)


def test_timing_errors_window_skip_and_first_frames() -> None:
    start = 10.0
    arrivals = [start] * 4 + [start + (k - 3) * 0.02 for k in range(4, 20)]
    arrivals[4] += 0.010  # waits for the model's second delta
    steady = analysis.frame_timing_errors(arrivals, skip_frames=6)
    startup = analysis.frame_timing_errors(arrivals, first_frames=6)
    assert len(steady) + len(startup) == 20
    assert max(steady) == pytest.approx(0.0, abs=1e-9)
    assert max(startup) == pytest.approx(10.0)
    windowed = analysis.frame_timing_errors(arrivals, window=(start + 0.1, start + 0.2))
    assert len(windowed) == 5


def test_timing_errors_restart_after_kill_audio() -> None:
    first = [1.0] * 4 + [1.0 + (k - 3) * 0.02 for k in range(4, 10)]
    # killAudio, then the next reply 300 ms later: no gap rule applies, the break does.
    second = [first[-1] + 0.3] * 4 + [first[-1] + 0.3 + (k - 3) * 0.02 for k in range(4, 8)]
    without = analysis.frame_timing_errors(first + second)
    with_break = analysis.frame_timing_errors(first + second, breaks=[first[-1] + 0.1])
    assert max(with_break) == pytest.approx(0.0, abs=1e-9)
    assert max(without) > 100


def test_hop_latency_takes_the_latest_frame_sent_before_the_append() -> None:
    sends = [0.00, 0.02, 0.04, 0.06]
    appends = [0.001, 0.0415, 0.0612, -1.0]
    hops = analysis.hop_latencies(sends, appends)
    assert hops == pytest.approx([1.0, 1.5, 1.2])
    assert analysis.hop_latencies(sends, appends, window=(0.03, 0.05)) == pytest.approx([1.5])


def test_delta_to_frame_and_barge_in() -> None:
    arrivals = [1.002, 1.022, 1.042, 2.5, 2.52, 2.54]
    assert analysis.delta_to_frame([1.0, 2.49, 9.0], arrivals) == pytest.approx([2.0, 10.0])
    # Speech starts at 2.53; killAudio at 2.531; the frame at 2.54 is stale.
    to_kill, to_stale = analysis.barge_in([2.53, 5.0], [2.531], arrivals)
    assert to_kill == pytest.approx([1.0])
    assert to_stale == pytest.approx([10.0])
    to_kill, to_stale = analysis.barge_in([2.545], [2.546], arrivals)
    assert to_stale == [0.0]


def test_histogram_summary_uses_conservative_bin_edges() -> None:
    data = {"bin_ms": 0.1, "counts": {"0": 98, "12": 1, "150": 1}}
    summary = histogram_summary(data)
    assert summary["n"] == 100
    assert summary["p50"] == 0.1
    assert summary["p99"] == pytest.approx(1.3)
    assert summary["max"] == pytest.approx(15.1)
    assert histogram_summary({"bin_ms": 0.1, "counts": {}})["p99"] is None


def test_summarize_stacks_separates_idle_and_busy_samples() -> None:
    raw = "\n".join(
        [
            "main (a.py:1);loop (b.py:2);EpollSelector.select (selectors.py:468) 50",
            "main (a.py:1);loop (b.py:2);resample (r.py:9) 30",
            "main (a.py:1);loop (b.py:2);send (s.py:3) 20",
        ]
    )
    profile = summarize_stacks(raw)
    assert profile["samples"] == 100
    assert profile["idle_share"] == 50.0
    assert profile["self"][0] == [60.0, "resample (r.py:9)"]
    assert [100.0, "main (a.py)"] in profile["inclusive"]  # per function, any of its lines


def test_format_table_aligns_columns_and_marks_missing_values() -> None:
    table = format_table(
        [("name", "part"), ("p99", "p99 ms"), ("ok", "pass")],
        [{"name": "capacity", "p99": 3.14159, "ok": True}, {"name": "x", "ok": False}],
    )
    lines = table.splitlines()
    assert lines[0].split() == ["part", "p99", "ms", "pass"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["capacity", "3.14", "yes"]
    assert lines[3].split() == ["x", "-", "no"]
    assert len({len(line) for line in lines[:3]}) == 1


def test_write_results_writes_stamped_and_latest(tmp_path: Path) -> None:
    path = write_results({"a": 1, "where": tmp_path}, tmp_path, stamp="20260101T000000Z")
    assert path.name == "20260101T000000Z.json"
    assert json.loads(path.read_text()) == {"a": 1, "where": str(tmp_path)}
    assert (tmp_path / "latest.json").read_text() == path.read_text()


def test_capacity_step_from_repeated_runs_needs_every_run_to_pass() -> None:
    from bench.capacity import combine_runs

    runs = [
        {"calls": 100, "passed": True, "generator_saturated": False, "err": {"p99": 1.0}},
        {"calls": 100, "passed": False, "generator_saturated": True, "err": {"p99": 3.0}},
        {"calls": 100, "passed": True, "generator_saturated": False, "err": {"p99": 2.0}},
    ]
    step = combine_runs(runs)
    assert step["err"]["p99"] == 2.0
    assert step["err"]["p99_runs"] == [1.0, 3.0, 2.0]
    assert step["passed"] is False
    assert step["generator_saturated"] is True
    assert step["runs"] == 3
    assert combine_runs(runs[:1]) is runs[0]


def test_summarize_stacks_counts_native_waits_as_idle_and_names_native_code_by_library() -> None:
    raw = "\n".join(
        [
            "thread_run (libpython3.11.so);_worker (concurrent/futures/thread.py:83);"
            "PyThread_acquire_lock_timed (libpython3.11.so);0x7f01 (libc.so.6) 40",
            "run (loop.c:1);uv__io_poll (linux.c:1);epoll_wait (libc.so.6) 20",
            "run (loop.c:1);StreamResampler.process (r.py:80);0x7f02 (soxr/soxr_ext.so) 30",
            "run (loop.c:1);OpenAIRealtimeSession.send_audio (s.py:3);write (libc.so.6) 6",
            "run (loop.c:1);OpenAIRealtimeSession.send_audio (s.py:3);"
            "token_bytes (secrets.py:46);getrandom (libc.so.6) 2",
            "run (loop.c:1);uv__read (stream.c:1);read (libc.so.6) 2",
        ]
    )
    profile = summarize_stacks(raw)
    assert profile["idle_share"] == 60.0
    assert profile["self"][0] == [75.0, "(native) (soxr/soxr_ext.so)"]
    assert [15.0, "write (libc.so.6)"] in profile["self"]
    assert profile["parts"] == [
        [75.0, "resampling: soxr and the numpy conversions around it"],
        [15.0, "uplink appends: JSON, base64, framing, socket write"],
        [5.0, "mask draws for the model socket (os.urandom)"],
        [5.0, "event loop: epoll, socket reads, timers, callbacks"],
    ]
    # Inclusive shares are per Python function; native frames are left out.
    assert [20.0, "OpenAIRealtimeSession.send_audio (s.py)"] in profile["inclusive"]
    assert not any("libc" in frame or "loop.c" in frame for _, frame in profile["inclusive"])


def test_histogram_summary_reads_the_named_histogram() -> None:
    data = {"bin_ms": 0.1, "counts": {"0": 1}, "hop_counts": {"4": 3, "19": 1}}
    assert histogram_summary(data, "hop_counts")["max"] == pytest.approx(2.0)
    assert histogram_summary(data, "hop_counts")["n"] == 4
    assert histogram_summary(data, "hop_block_start_counts")["n"] == 0


def test_hop_parts_pair_the_kth_frame_and_append_of_each_call() -> None:
    from types import SimpleNamespace

    from bench.capacity import _hop_parts

    # Leg 0 sent frames at 10.00, 10.02, ...; the node's timeline starts at its 2nd frame (the
    # window reset) and its 1st append; the double saw appends 0.5 ms after the node wrote them.
    sends = [10.0 + 0.02 * k for k in range(6)]
    legs = [SimpleNamespace(sends=sends, error=None), SimpleNamespace(sends=sends, error="x")]
    legs.append(SimpleNamespace(sends=sends, error=None))
    timelines = {
        "call-0": {
            "frames_first": 2,
            "frames": [sends[k] + 0.001 * k for k in range(2, 6)],
            "appends_first": 1,
            "appends": [10.0602, 10.1002],
        },
        # Every 2nd frame from the 1st: frames 1, 3 and 5 (5 is after the window).
        "call-2": {
            "frames_first": 1,
            "frames_stride": 2,
            "frames": [sends[1] + 0.003, sends[3] + 0.007, sends[5] + 0.001],
            "appends_first": 0,
            "appends_stride": 2,
            "appends": [],
        },
        "call-1": {"frames_first": 0, "frames": [99.0], "appends_first": 0, "appends": []},
    }
    taps = [{"appends": [10.02, 10.0607, 10.1007]}, {"appends": []}, {"appends": []}]
    parts = _hop_parts(
        SimpleNamespace(legs=legs),
        taps,
        ["call-0", "call-1", "call-2"],
        {"timelines": timelines},
        (10.0, 10.09),
    )
    read = parts["hop_read_wait_ms"]
    # Frames 2–4 were sent in the window (frame 5 at 10.10 is after it); call-1's leg failed
    # to connect, so its timeline is not counted.
    assert read["n"] == 5  # and frames 1 and 3 of call-2
    assert read["min"] == pytest.approx(2.0)
    assert read["max"] == pytest.approx(7.0)
    double = parts["hop_double_wait_ms"]
    assert double["n"] == 1  # the append written at 10.1002 is after the window
    assert double["min"] == pytest.approx(0.5)
    assert _hop_parts(SimpleNamespace(legs=legs), taps, ["call-0"], None, (0.0, 1.0)) == {}


def test_probe_timeline_samples_every_stride_th_frame_from_an_aligned_index() -> None:
    from bench import node_probe

    timeline = node_probe._CallTimeline()
    stride = node_probe.TIMELINE_STRIDE
    for k in range(stride + 3):
        timeline.frame(float(k))
    timeline.reset()  # the window starts after frame stride + 2
    for k in range(stride + 3, 4 * stride):
        timeline.frame(float(k))
    data = timeline.as_json()
    assert data["frames_first"] == 2 * stride
    # The j-th time kept is that of frame first + j * stride.
    assert data["frames"] == [
        float(data["frames_first"] + j * data["frames_stride"]) for j in (0, 1)
    ]
    for k in range(10 * node_probe.TIMELINE_SIZE):
        timeline.append(float(k))
    assert len(timeline.appends) == node_probe.TIMELINE_SIZE  # bounded
