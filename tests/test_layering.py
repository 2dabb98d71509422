"""The layers of the app keep to their places: `core` is plain Python (Streamlit only in its cache
module), and the home page stays light (no PyTorch, no transformers), which is why it paints in
about two seconds on a cold server."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
CACHE_MODULE = "core/cached.py"


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_imported_modules_sees_imports_everywhere(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os, json as j\nfrom a.b import c\ndef f():\n    import streamlit.runtime\n"
                      "    from . import sibling\nclass K:\n    from streamlit import cache_data\n")
    assert imported_modules(sample) == {"os", "json", "a.b", "streamlit.runtime", "streamlit"}


def test_core_imports_streamlit_only_in_its_cache_module():
    offenders = {}
    for path in sorted((APP_DIR / "core").glob("*.py")):
        streamlit = sorted(m for m in imported_modules(path) if m == "streamlit" or m.startswith("streamlit."))
        if streamlit and path.relative_to(APP_DIR).as_posix() != CACHE_MODULE:
            offenders[path.name] = streamlit
    assert offenders == {}, f"Streamlit belongs in {CACHE_MODULE} only"
    assert "streamlit" in imported_modules(APP_DIR / CACHE_MODULE)  # the walk does see it where it is


def test_home_page_runs_without_torch_or_transformers():
    """Home, run as a student opens it (its whole script, in a fresh interpreter), never imports
    PyTorch or transformers: they cost seconds that the first page must not wait for."""
    script = (
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"app = AppTest.from_file({str(APP_DIR / 'Home.py')!r}, default_timeout=60).run()\n"
        "heavy = sorted({name.split('.')[0] for name in sys.modules} & {'torch', 'transformers'})\n"
        "print(json.dumps({'exceptions': [str(e.value) for e in app.exception], 'titles': [t.value for t in app.title],"
        " 'heavy': heavy}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=APP_DIR,
                          env={**os.environ, "PYTHONPATH": str(APP_DIR)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == [] and result["titles"]  # Home really ran
    assert result["heavy"] == []


def test_the_lesson_pages_are_not_in_a_folder_streamlit_reads_as_an_old_style_app():
    """With a `pages/` folder beside Home.py, Streamlit also registered its files as an old-style
    multipage app: on a server whose first visitor came by a lesson's address (a shared link), every
    sidebar named the lessons by their file names ("Feed forward", "Sampling") instead of their
    titles, for every student after. Seen in Chromium; renaming the folder ended it."""
    from core.course import COURSE

    assert not (APP_DIR / "pages").exists()
    folders = {Path(entry.page).parent for entry in COURSE}
    assert folders == {Path("lesson_pages")} and all((APP_DIR / entry.page).is_file() for entry in COURSE)
