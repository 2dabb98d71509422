"""Two replicas of the app behind Debian's nginx with the shipped configuration (deploy/nginx.conf),
driven by real Chromium tabs: each browser stays on its replica and keeps its prompt across
lessons; stopping one replica leaves the other's students untouched, and the stopped replica's
students reconnect to a working session on the other, their prompt kept by the address. The replica
that lives on is the session's shared app server (`app_url`); the one stopped is started here."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.streamlit_server import (APP_DIR, INSTALL_BROWSER, chromium_path, free_port, launch_chromium, no_errors, running_app,
                                    wait_until_idle)

NGINX_CONF = APP_DIR / "deploy" / "nginx.conf"


def nginx_missing() -> str | None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        return "the replica test needs Debian's nginx, which is not installed: apt-get install nginx"
    if chromium_path() is None:
        return f"the replica test needs Debian's chromium, which is not installed: {INSTALL_BROWSER}"
    return None


@contextlib.contextmanager
def nginx_in_front(replica_ports: list[int]):
    """The shipped nginx.conf with these replicas, on a free port; yields the proxy's URL."""
    port = free_port()
    conf = NGINX_CONF.read_text()
    conf = conf.replace("server 127.0.0.1:8601", f"server 127.0.0.1:{replica_ports[0]}")
    conf = conf.replace("server 127.0.0.1:8602", f"server 127.0.0.1:{replica_ports[1]}")
    conf = conf.replace("listen 8500;", f"listen 127.0.0.1:{port};")
    # the test needs to know which replica served a page; a live deployment does not tell visitors
    conf = conf.replace("proxy_pass http://glassbox;", "add_header X-Replica $upstream_addr always;\n"
                                                       "            proxy_pass http://glassbox;")
    with tempfile.TemporaryDirectory() as prefix:
        (Path(prefix) / "logs").mkdir()
        (Path(prefix) / "nginx.conf").write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        process = subprocess.Popen([nginx, "-p", prefix, "-c", "nginx.conf", "-g",
                                    f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log;"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    import urllib.request
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
                    break
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def open_student(browser, url: str, prompt: str, taken: set[str]):
    """A new browser (its own cookies) opens the course with its prompt; returns (page, replica), or
    None when the replica that served its address already has a student (the browser is closed
    before its page is drawn: a student more on that replica would test nothing new)."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    replicas = []
    page.on("response", lambda response: replicas.append(response.headers.get("x-replica")))
    first = page.goto(f"{url}/?prompt={urllib.parse.quote(prompt)}", wait_until="commit").headers.get("x-replica")
    if first in taken:
        context.close()
        return None
    page.get_by_text("The lessons").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    served = {r for r in replicas if r}
    assert served == {first}, f"one browser, one replica: {served}"
    return page, first


def walk_lessons(page, prompt: str) -> None:
    from playwright.sync_api import expect

    for path, title in (("Tokenization", "Lesson 1 ·"), ("Embeddings", "Lesson 2 ·")):
        page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]').first.click()
        page.get_by_text(title).first.wait_for(timeout=60_000)
        expect(page.get_by_role("textbox", name="Your prompt")).to_have_value(prompt, timeout=60_000)
        wait_until_idle(page)
        no_errors(page)


def test_two_replicas_behind_nginx_keep_students_and_survive_one_stopping(app_url):
    reason = nginx_missing()
    if reason:
        if os.environ.get("GLASSBOX_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import expect

    ports = [free_port(), int(app_url.rsplit(":", 1)[1])]  # a replica started here, and the shared server
    with running_app(ports[0]) as (_, first_replica, _), nginx_in_front(ports) as url, \
            contextlib.closing(launch_chromium()) as browser:
        students = {}
        for index in range(16):  # new browsers until both replicas have a student (all on one: 1 in 32,768)
            prompt = f"Once upon a time, there was a girl named Mia{index}. One day,"
            opened = open_student(browser, url, prompt, taken=set(students))
            if opened:
                page, replica = opened
                students[replica] = page, prompt
            if len(students) == 2:
                break
        assert len(students) == 2, "the cookie hash spreads browsers over both replicas"
        for page, prompt in students.values():
            walk_lessons(page, prompt)  # each keeps its prompt across lessons on its replica
        stopped = f"127.0.0.1:{ports[0]}"
        first_replica.terminate()  # one replica goes down mid-class
        first_replica.wait(timeout=20)
        survivor_page, survivor_prompt = students[f"127.0.0.1:{ports[1]}"]
        walk_lessons(survivor_page, survivor_prompt)  # untouched
        moved_page, moved_prompt = students[stopped]
        # Streamlit's own reconnect (no reload) opens a fresh session, which nginx sends to the live replica
        expect(moved_page.get_by_role("textbox", name="Your prompt")).to_be_visible(timeout=60_000)
        moved_page.get_by_text("Lesson 2 ·").first.wait_for(timeout=60_000)
        wait_until_idle(moved_page)
        no_errors(moved_page)
        moved_page.reload()  # and the address still holds the student's prompt
        expect(moved_page.get_by_role("textbox", name="Your prompt")).to_have_value(moved_prompt, timeout=60_000)
        walk_lessons(moved_page, moved_prompt)
