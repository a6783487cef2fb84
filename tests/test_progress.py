"""progress: off a terminal, plain lines with the count, the rate and the ETA."""

from __future__ import annotations

from googlenet.progress import Progress


def test_plain_lines_off_a_terminal_until_the_last_item():
    lines: list[str] = []
    with Progress(3, "image(s)", lines.append, desc="predict", every=0.0) as progress:
        assert progress.bar.disable  # pytest captures stderr: no terminal, no bar
        for _ in range(3):
            progress.update()
    # one line after each item but the last (the caller reports the total itself)
    assert [line.split(",")[0] for line in lines] == [
        "predict: 1/3 image(s)",
        "predict: 2/3 image(s)",
    ]
    assert all("image(s)/s" in line and "eta" in line for line in lines)


def test_no_line_before_its_time():
    lines: list[str] = []
    with Progress(5, "batches", lines.append, every=3600.0) as progress:
        for _ in range(5):
            progress.update()
    assert lines == [] and progress.done == 5
