"""Where a lesson's drawing time goes, figure by figure: `python bench/bench_figures.py [model]`.
Prints figures; asserts nothing.

Every Plotly figure each lesson sends on the default prompt (rendered in-process with AppTest, the
sections drawn on request opened too) is drawn alone in headless Chromium with the plotly.js the
Python package ships, offline, at 1,100 px wide: the median of three draws, per lesson and for the
heaviest figures. A figure alone costs less than on the lesson's page, where each draw also lays out
everything around it; the ranking is what this tells.
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
    const began = performance.now();
    await Plotly.newPlot(div, spec.data, Object.assign({}, spec.layout, {width: 1100}), {responsive: false});
    await new Promise(done => requestAnimationFrame(() => done()));
    const took = performance.now() - began;
    Plotly.purge(div);
    return took;
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
        timed = [(statistics.median(page.evaluate(DRAW, spec) for _ in range(3)), lesson, title)
                 for lesson, title, spec in figures]
    print(f"== {model}: each figure drawn alone in Chromium (median of 3) ==")
    for number in sorted({lesson for _, lesson, _ in timed}):
        mine = [ms for ms, lesson, _ in timed if lesson == number]
        print(f"lesson {number}: {len(mine):3d} figures, {sum(mine):6.0f} ms in all")
    print("the heaviest:")
    for ms, lesson, title in sorted(timed, reverse=True)[:15]:
        print(f"{ms:7.0f} ms  lesson {lesson}  {title[:70]}")


if __name__ == "__main__":
    main()
