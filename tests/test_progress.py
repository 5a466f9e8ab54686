"""Progress: periodic lines off a terminal, a rate and an ETA that leave out the first (tracing)
step."""
from __future__ import annotations

import io
import time

from cyclegan_tf.progress import Progress, format_duration


def test_lines_every_n_items_with_rate_and_eta_that_leave_out_the_first_item():
    lines = []
    progress = Progress(total=9, every=4, log=lines.append)
    time.sleep(0.5)  # the first step: tracing, much slower than the rest
    progress.update()
    for _ in range(7):
        time.sleep(0.01)
        progress.update(postfix="G 1.000")
    assert len(lines) == 2 and lines[0].startswith("step 4/9 |") and lines[1].startswith("step 8/9")
    assert lines[1].endswith("| G 1.000")
    assert progress.rate > 40  # 4 steps in ~0.04 s, not diluted by the 0.5 s first step
    assert progress.eta() < 0.2


def test_off_a_terminal_it_writes_lines_not_a_bar():
    stream = io.StringIO()
    progress = Progress(total=2, every=1, unit="image", stream=stream)
    progress.update()
    progress.update()
    progress.close()
    assert stream.getvalue().splitlines()[-1].startswith("image 2/2 |")
    assert "\r" not in stream.getvalue()


def test_format_duration():
    assert format_duration(3725) == "1:02:05" and format_duration(float("inf")) == "?"


def test_on_a_terminal_the_bar_starts_after_the_first_item_and_the_rate_is_measured():
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    stream = Terminal()
    progress = Progress(total=4, every=2, stream=stream)
    time.sleep(0.3)
    progress.update()
    for _ in range(3):
        time.sleep(0.01)
        progress.update(postfix="G 1.0")
    progress.close()
    assert "4/4" in stream.getvalue() and progress.rate > 20  # TensorBoard's steps/s
