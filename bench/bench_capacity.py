"""Capacity, measured with simulated students: `python bench/bench_capacity.py [students ...] [--model KEY]`.
Prints figures; asserts nothing.

Each simulated student speaks Streamlit's own websocket protocol (`/_stcore/stream`, the protobuf
messages of `streamlit.proto`), as a browser tab does, without the browser (30 Chromium tabs on two
cores measure Chromium, not the app): it opens Home with a prompt of its own in the address
(`?prompt=…`), then walks lessons 1-6 in order. For each class size (default 10, 30 and 100, all
starting at once, on this machine's loopback only) it reports the p50 / p95 time from a page
request to that page's last message, the errors (exception elements, timeouts), and the app
server's CPU seconds and peak memory; from these, server CPU seconds per student per lesson view
and the lesson views per second one core sustains.

`--model glassbox-stories` (default), `glassbox-stories-llama`, or `gpt2-small` (random weights in
GPT-2 small's shape, saved to a temporary folder: no network).

`--training 10 30`: lesson 7 instead. N students press Start together on a short run (the 1-minute
preset cut to 60 steps); printed: when the N-th student's run is done, the mean wait, and runs per
core per minute, with the app's in-process queue and with a local Ray cluster of the same two
cores (`ray.init(num_cpus=2)`, one run per two CPUs, as in the app): the same total CPU, so the
figures show what Ray costs on one machine; what it buys is more machines.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets  # noqa: E402  (installed with Streamlit's server)
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ClientState_pb2 import ClientState  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from core.course import LESSONS  # noqa: E402
from tests.streamlit_server import running_app  # noqa: E402

PAGE_TIMEOUT = 600.0  # seconds a page may take before the student counts it as an error
NAMES = "Mia Leo Ava Sam Zoe Max Ivy Tom Eva Ben".split()


class Student:
    """One simulated browser tab: a websocket session of its own."""

    def __init__(self, ws_url: str, origin: str, prompt: str, model: str | None):
        self.ws_url, self.origin = ws_url, origin
        self.query = urlencode({"prompt": prompt, **({"model": model} if model else {})})
        self.page_hashes: dict[str, str] = {}  # url path -> page_script_hash, from the navigation message
        self.seconds: list[float] = []
        self.errors = 0

    async def open_page(self, socket, url_path: str) -> None:
        state = ClientState(query_string=self.query, page_name=url_path,
                            page_script_hash=self.page_hashes.get(url_path, ""))
        began = time.perf_counter()
        await socket.send(BackMsg(rerun_script=state).SerializeToString())
        while True:
            message = ForwardMsg()
            message.ParseFromString(await asyncio.wait_for(socket.recv(), PAGE_TIMEOUT))
            kind = message.WhichOneof("type")
            if kind == "navigation":
                self.page_hashes.update({page.url_pathname: page.page_script_hash for page in message.navigation.app_pages})
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element" and \
                    message.delta.new_element.WhichOneof("type") == "exception":
                self.errors += 1
            elif kind == "script_finished" and \
                    message.script_finished == ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY:
                self.seconds.append(time.perf_counter() - began)
                return

    async def walk(self) -> None:
        try:
            async with websockets.connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin,
                                          max_size=None, open_timeout=PAGE_TIMEOUT, ping_interval=None) as socket:
                await self.open_page(socket, "")  # Home
                for entry in LESSONS[:6]:
                    await self.open_page(socket, entry.url_path)
        except (TimeoutError, OSError, websockets.WebSocketException):
            self.errors += 1


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_class(url: str, pid: int, students: int, model: str | None) -> None:
    ws_url, origin = url.replace("http://", "ws://") + "/_stcore/stream", url
    class_ = [Student(ws_url, origin, f"Once upon a time, there was a girl named {NAMES[i % 10]}. "
                      f"{NAMES[i % 10]} had {i + 2} red balls. One day, {NAMES[i % 10]} went to the", model)
              for i in range(students)]
    await Student(ws_url, origin, "A warm-up: the server imports PyTorch and loads the model once.", model).walk()
    cpu_before, began = process_cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(student.walk() for student in class_))
    wall, cpu = time.perf_counter() - began, process_cpu_seconds(pid) - cpu_before
    seconds = sorted(s for student in class_ for s in student.seconds)
    views = len(seconds)
    errors = sum(student.errors for student in class_)
    p50 = statistics.median(seconds) if seconds else float("nan")
    p95 = seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))] if seconds else float("nan")
    print(f"{students:4d} students: {views} page views ({students * 7} asked) in {wall:6.1f} s; page request to its "
          f"last message p50 {p50:5.2f} s, p95 {p95:6.2f} s; errors {errors}; server CPU {cpu:6.1f} s "
          f"({cpu / max(1, views):.2f} s per page view, {views / max(cpu, 1e-9):.1f} views per CPU-second); "
          f"peak memory {peak_memory_mb(pid):,.0f} MB", flush=True)


def training_class(students: int, on_ray: bool, steps: int = 60) -> None:
    from dataclasses import replace

    from core import live_training
    from core.live_training import PRESETS
    from bench.bench_training import seconds_until_done
    from core.training_run import TRAINING_SLOTS, Cadence, TrainingRun, available_cores

    config = replace(PRESETS["1-minute"], max_steps=steps)
    data = live_training.prepare_data(live_training.story_documents(), 512)
    quiet = Cadence(*[10 * steps] * 3)  # the loss only: what is measured is the queue, not the charts
    if on_ray:
        from core.ray_runs import RayTrainingRun

        runs = [RayTrainingRun(config, data, "Once upon a time", "Once", cpus=2) for _ in range(students)]
    else:
        runs = [TrainingRun(config, data, "Once upon a time", "Once", quiet) for _ in range(students)]
    done = seconds_until_done(runs)
    wall, cores = max(done), available_cores()
    where = "a local Ray cluster (2 CPUs, 2 per run)" if on_ray else f"the in-process queue ({TRAINING_SLOTS.count} at a time)"
    failed = sum(run.status != "finished" for run in runs)
    print(f"{students:3d} students, {steps} steps each, on {where}: the last run done after {wall:6.1f} s, a "
          f"student waits {statistics.mean(done):6.1f} s on average; {students / wall * 60 / cores:.1f} "
          f"runs per core per minute; {failed} not finished", flush=True)
    for run in runs:
        run.abandon_after = 0.0  # the pages close: Ray actors end


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("students", nargs="*", type=int, default=[10, 30, 100])
    parser.add_argument("--model", default="glassbox-stories")
    parser.add_argument("--training", action="store_true", help="lesson 7's queue, in-process and on Ray")
    parser.add_argument("--ray-only", action="store_true", help="with --training: only the Ray cluster")
    arguments = parser.parse_args()
    if arguments.training:
        import ray
        import torch

        torch.set_num_threads(2)
        print("== lesson 7: students pressing Start together ==", flush=True)
        for students in [] if arguments.ray_only else arguments.students:
            training_class(students, on_ray=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="glassbox")
        for students in arguments.students:
            training_class(students, on_ray=True)
            time.sleep(3)  # the previous class's actors end
        ray.shutdown()
        return
    with tempfile.TemporaryDirectory() as folder:
        model = arguments.model
        if model == "gpt2-small":
            from bench.bench_app import random_gpt2_small

            model = random_gpt2_small(Path(folder))
        print(f"== simulated students on {arguments.model}, each: Home, then lessons 1-6 ==", flush=True)
        for students in arguments.students:
            with running_app() as (url, process, _):  # a fresh server per class: its memory peak is the class's
                asyncio.run(one_class(url, process.pid, students, None if model == "glassbox-stories" else model))


if __name__ == "__main__":
    main()
