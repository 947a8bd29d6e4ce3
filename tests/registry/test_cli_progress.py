"""The progress bar of `registry hashes import`: bytes read of the file, entries sent."""

from __future__ import annotations

import io

from registry.cli.progress import Progress


def test_the_bar_shows_the_share_of_bytes_read_and_the_entries_sent():
    stream = io.StringIO()
    progress = Progress(stream, total_bytes=200)

    progress(50, 1_000)
    progress(400, 12_345)  # a file that grew while read stops at full
    progress.done("imported")

    # Each redraw returns to the start of the line; done() ends it.
    first, second = stream.getvalue().split("\r")[1:]
    assert first.startswith(f"[{'#' * 7}{'.' * 23}]  25.0%  1,000 entries  ")
    assert second.startswith(f"[{'#' * 30}] 100.0%  12,345 entries  ")
    assert second.endswith(" s\nimported\n")


def test_an_empty_file_does_not_divide_by_zero():
    stream = io.StringIO()
    Progress(stream, total_bytes=0)(0, 0)
    assert "0.0%  0 entries" in stream.getvalue()
