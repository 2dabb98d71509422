"""Where a lesson's drawing time goes, figure by figure: `python bench/bench_figures.py [model]`.
Prints figures; asserts nothing.

Every Plotly figure each lesson sends on the default prompt (rendered in-process with AppTest, the
sections drawn on request opened too) is drawn alone in headless Chromium with the plotly.js the
Python package ships, offline, at 1,100 px wide: the median of three draws, per lesson and for the
heaviest figures. A figure alone costs less than on the lesson's page, where each draw also lays out
everything around it; the ranking is what this tells. Then, as Streamlit's chart does right after
drawing, each figure is handed to plotly.js again as a fresh copy (`Plotly.react`): what that copy
costs, and the figures for which plotly.js works the whole chart out again (it should be none: see
core.plot_style's ONE_DATA_REVISION and BINARY_TRACES).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.course import APP_DIR, COURSE  # noqa: E402
from tests.streamlit_server import browser_page, open_every_section  # noqa: E402

DRAW = """async (spec) => {
    const div = document.getElementById('figure');
    const layout = Object.assign({}, spec.layout, {width: 1100});
    const began = performance.now();
    await Plotly.newPlot(div, spec.data, layout, {responsive: false});
    await new Promise(done => requestAnimationFrame(() => done()));
    const drawn = performance.now(), worked_out = div.calcdata;
    const copy = JSON.parse(JSON.stringify({data: spec.data, layout: layout}));  // what Streamlit hands over next
    await Plotly.react(div, copy.data, copy.layout, {responsive: false});
    await new Promise(done => requestAnimationFrame(() => done()));
    const copied = performance.now();
    const again = div.calcdata !== worked_out;
    Plotly.purge(div);
    return [drawn - began, copied - drawn, again];
}"""


def lesson_figures(model: str) -> list[tuple[int, str, dict]]:
    """(lesson, title, Plotly spec) of every figure every lesson draws on the default prompt."""
    from streamlit.testing.v1 import AppTest

    found = []
    for entry in COURSE:
        if not entry.is_built:
            continue
        app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120)
        app.session_state["model_key"] = model
        open_every_section(app)
        app.run()
        app.switch_page(entry.page).run()
        for chart in app.get("plotly_chart"):
            spec = json.loads(chart.proto.spec)
            title = ((spec.get("layout") or {}).get("title") or {}).get("text") or chart.proto.id.split("-", 2)[-1]
            found.append((entry.number, title, spec))
    return found


def main() -> None:
    import plotly
    from streamlit.logger import set_log_level

    set_log_level("error")
    model = sys.argv[1] if len(sys.argv) > 1 else "glassbox-stories"
    plotly_js = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    figures = lesson_figures(model)
    with tempfile.TemporaryDirectory() as folder, browser_page() as page:
        blank = Path(folder) / "figure.html"
        blank.write_text("<html><body><div id='figure'></div></body></html>", encoding="utf-8")
        page.goto(blank.as_uri())
        page.add_script_tag(path=plotly_js)
        timed = []
        for lesson, title, spec in figures:
            draws = [page.evaluate(DRAW, spec) for _ in range(3)]
            timed.append((statistics.median(d[0] for d in draws), statistics.median(d[1] for d in draws),
                          any(d[2] for d in draws), lesson, title))
    print(f"== {model}: each figure drawn alone in Chromium, then handed a copy (median of 3) ==")
    for number in sorted({lesson for *_, lesson, _ in timed}):
        mine = [(ms, copy_ms) for ms, copy_ms, _, lesson, _ in timed if lesson == number]
        print(f"lesson {number}: {len(mine):3d} figures, {sum(ms for ms, _ in mine):6.0f} ms in all, "
              f"the copies {sum(copy_ms for _, copy_ms in mine):5.0f} ms")
    print("the heaviest:")
    for ms, copy_ms, _, lesson, title in sorted(timed, reverse=True)[:15]:
        print(f"{ms:7.0f} ms  (copy {copy_ms:4.0f})  lesson {lesson}  {title[:70]}")
    again = [(lesson, title) for _, _, redone, lesson, title in timed if redone]
    print(f"worked out again from the copy: {len(again)} figure(s)"
          + "".join(f"\n  lesson {lesson}  {title[:70]}" for lesson, title in again))


if __name__ == "__main__":
    main()
