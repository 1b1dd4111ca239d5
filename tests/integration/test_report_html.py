"""report.html looked at in headless Chromium (Debian's chromium, `make debs`), as the engineer on
call would: the seed fleets, a fleet whose faults fold a dozen consequences under their causes, two
clusters, and a 500-node synthetic fleet, each at 1400 and 700 px wide. Chromium is driven over the
DevTools protocol on a pipe (--remote-debugging-pipe: no port, no third-party client); every call
is bounded, and a browser that does not answer is killed by its process group.

Checks: no horizontal scroll (the page's scrollWidth fits the window; wide matrices scroll in their
own box), one colour per severity everywhere and a neutral one for zero counts, text in every
problem cell, the same counts as report.json (check_page of the unit tests, on the same HTML), the
content without JavaScript, and the print layout. Screenshots (full page and the first matrix) are
kept under the test's tmp_path; `pytest -s` prints where and how long each page took."""

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet, _report
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import build, node, refresh
from ansible_collections.netdoctor.calico.tests.unit.plugins.plugin_utils.test__report import (
    GENERATED,
    both_cases,
    check_page,
    misregistered_report,
    two_cluster_report,
)

WIDTHS = (1400, 700)
HEIGHT = 900
PRINT_WIDTH = 718  # A4 at 96 dpi less Chromium's default margins
TIMEOUT = 60  # seconds for one DevTools call (a page load included)
MAX_SHOT_HEIGHT = 8000
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--mute-audio", "--remote-debugging-pipe")


class Chromium:
    """One headless Chromium; DevTools commands go in on fd 3, replies and events come out on fd 4,
    each message a JSON text ended by a NUL byte."""

    def __init__(self, workdir, width):
        binary = shutil.which("chromium")
        assert binary, "chromium is missing: `make debs` installs it (Debian package chromium)"
        self.profile = tempfile.mkdtemp(prefix="profile-", dir=workdir)
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()

        def onto_3_and_4():
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log_path = os.path.join(workdir, f"chromium-{width}.log")
        with open(self.log_path, "wb") as log:
            # preexec_fn only moves the pipe ends onto fds 3 and 4 (no thread runs here).
            self.proc = subprocess.Popen(
                [binary, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{HEIGHT}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(3, 4),
                preexec_fn=onto_3_and_4, start_new_session=True)  # noqa: PLW1509
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self._events = b"", 0, []

    def _message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError(f"Chromium gave no answer within {TIMEOUT} s (log: {self.log_path})")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (log: {self.log_path})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, session=None, **params):
        self._id += 1
        command = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._out, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._message(deadline)
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def _event(self, method, session):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(index)
            self._events.append(self._message(deadline))

    def open(self, path, width, height=HEIGHT, *, scripts=True, media=""):
        """A new tab showing ``path`` at ``width`` x ``height`` CSS px; returns its session."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session)
        self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        if not scripts:
            self.send("Emulation.setScriptExecutionDisabled", session, value=True)
        if media:
            self.send("Emulation.setEmulatedMedia", session, media=media)
        self.send("Page.navigate", session, url=f"file://{path}")
        self._event("Page.loadEventFired", session)
        return target, session

    def evaluate(self, session, expression):
        result = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, session, path, box):
        data = self.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                         clip={**box, "scale": 1})["data"]
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))

    def close_tab(self, target):
        self.send("Target.closeTarget", targetId=target)

    def close(self):
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=15)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the browser's own process group: only what we started
            self.proc.wait(timeout=15)
        for fd in (self._in, self._out):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


# What the page looks like in the browser: the layout width, the colours used for each severity
# class (cells, badges, legend), the neutral zero badges, problem cells without visible text.
MEASURE = """(() => {
  const bg = el => getComputedStyle(el).backgroundColor;
  const colours = {};
  for (const el of document.querySelectorAll('table.matrix td, span.count, span.badge, .legend .sw')) {
    const sev = [...el.classList].find(c => c.startsWith('sev-')) || (el.classList.contains('zero') ? 'zero' : null);
    if (sev) (colours[sev] = colours[sev] || []).includes(bg(el)) || colours[sev].push(bg(el));
  }
  const mute = [...document.querySelectorAll('table.matrix td:not(.sev-ok)')].filter(td => {
    const s = getComputedStyle(td);
    return !td.textContent.trim() || s.color === s.backgroundColor || parseFloat(s.fontSize) < 5;
  }).length;
  const hidden = [...document.querySelectorAll('details > :not(summary)')].filter(e => !e.checkVisibility()).length;
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
    return {x: 0, y: Math.max(r.top + scrollY - 10, 0), width: innerWidth, height: Math.min(r.height + 20, 3000)}; };
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth,
          height: document.documentElement.scrollHeight, colours: colours, mute: mute,
          articles: document.querySelectorAll('article.finding').length, hidden: hidden,
          tools: getComputedStyle(document.querySelector('.mtools') || document.body).display,
          js: document.documentElement.classList.contains('js'),
          matrix: box(document.querySelector('table.matrix'))};
})()"""


def fleet_500():
    """500 BGP nodes in 20 racks (/24s) of 25: r03n07 registered with a second NIC's address (AD001,
    the ~1,500 sessions and routes it breaks folded under it), three wrong next hops in rack 11, rack 7
    sending from a second address and its autodetection about to change, four nodes unreachable."""
    specs = []
    for rack in range(20):
        for n in range(25):
            host, ip = f"r{rack:02d}n{n:02d}", f"10.20.{rack}.{10 + n}"
            nics = [("eth0", f"{ip}/24")]
            if rack == 7:
                nics.append(("eth1", f"172.16.7.{10 + n}/24"))
            if (rack, n) == (3, 7):
                nics.append(("eth1", "198.51.100.37/24"))
                ip = "198.51.100.37"
            specs.append(node(host, nics, ip, f"100.64.{rack}.{n * 8}/29", f"100.64.{rack}.{n * 8}"))
    intended = {s["host"]: s["nics"][0][1].split("/")[0] for s in specs}
    facts = build("bgp", specs)
    for host, fact in facts.items():
        fact["autodetection"]["intended"] = intended[host]
    wrong = next(s for s in specs if s["host"] == "r03n07")
    for spec in specs:
        if spec is wrong:
            continue
        for host, address, block in ((spec["host"], wrong["ip"], wrong["block"]),
                                     (wrong["host"], spec["ip"], spec["block"])):
            for peer in facts[host]["bird"]["peers"]:
                if peer["address"] == address:
                    peer.update(state="start", info="Connect", established=False)
            routes = facts[host]["routes"]
            routes["remote_blocks"] = [r for r in routes["remote_blocks"] if r["dst"] != block]
    facts["r03n07"]["peer_routes"] = {s["ip"]: {"prefsrc": "10.20.3.17", "dev": "eth0", "gateway": None}
                                      for s in specs if s is not wrong}
    for n in (2, 5, 9):
        for route in facts[f"r11n{n:02d}"]["routes"]["remote_blocks"]:
            if route["dst"] == "100.64.12.0/29":
                route["gateway"] = "10.20.11.250"
    for n in range(25):
        facts[f"r07n{n:02d}"]["peer_routes"]["10.20.2.10"] = {"prefsrc": f"172.16.7.{10 + n}", "dev": "eth1",
                                                              "gateway": None}
    for n in (1, 4, 8, 16):
        facts[f"r15n{n:02d}"] = None
    maps, findings, hosts = _fleet.audit_fleet(refresh(facts), intended_ips=intended)
    return _report.build_report(maps, findings, hosts, GENERATED)


REPORTS = {"seed": both_cases, "folded": misregistered_report, "two-clusters": two_cluster_report,
           "fleet-500": fleet_500}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """name -> (report, path of its report.html)."""
    out = tmp_path_factory.mktemp("report_html")
    made = {}
    for name, make in REPORTS.items():
        report = make()
        path = out / f"{name}.html"
        path.write_text(_report.render_html(report), encoding="utf-8")
        made[name] = (report, path)
    return made


@pytest.fixture(scope="module", params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def browser(request, tmp_path_factory):
    width = request.param
    workdir = tmp_path_factory.mktemp(f"chromium-{width}")
    chromium = Chromium(str(workdir), width)
    try:
        yield width, chromium, workdir
    finally:
        chromium.close()


@pytest.mark.parametrize("name", list(REPORTS))
def test_the_page_in_chromium(name, pages, browser):
    width, chromium, workdir = browser
    report, path = pages[name]
    page = check_page(report, path.read_text(encoding="utf-8"))  # counts and colour classes, parsed
    start = time.monotonic()
    target, session = chromium.open(str(path), width)
    seen = chromium.evaluate(session, MEASURE)
    shot = workdir / f"{name}-{width}.png"
    chromium.screenshot(session, shot, {"x": 0, "y": 0, "width": width,
                                        "height": min(seen["height"], MAX_SHOT_HEIGHT)})
    if seen["matrix"]:
        chromium.screenshot(session, workdir / f"{name}-{width}-matrix.png", seen["matrix"])
    chromium.close_tab(target)
    print(f"\n{name} at {width} px: {time.monotonic() - start:.2f} s, page {seen['height']} px high, "
          f"{path.stat().st_size // 1000} KB; screenshots in {workdir}")

    assert seen["scrollWidth"] <= seen["innerWidth"] == width, seen  # no sideways scroll
    colours = seen["colours"]
    assert all(len(v) == 1 for v in colours.values()), colours  # one colour per severity, everywhere
    severities = {k: v[0] for k, v in colours.items() if k != "zero"}
    assert len(set(severities.values())) == len(severities), severities  # told apart by colour
    if "zero" in colours:
        assert colours["zero"][0] not in severities.values(), colours  # a zero count is in no alarm colour
    for sev in ("critical", "warning", "info"):
        if report["summary"][sev] == 0:
            assert f"sev-{sev}" not in colours, (sev, colours)  # no colour the counts say is 0
    assert seen["mute"] == 0, seen  # every problem cell carries its letter or count
    assert seen["js"] and seen["tools"] == "flex"
    assert seen["articles"] == len(page.find_all("article"))
    assert shot.stat().st_size > 10_000


def test_the_content_needs_no_javascript(pages, browser):
    width, chromium, _workdir = browser
    for name, (report, path) in pages.items():
        target, session = chromium.open(str(path), width, scripts=False)
        seen = chromium.evaluate(session, MEASURE)
        chromium.close_tab(target)
        assert not seen["js"] and seen["tools"] == "none", (name, seen)  # zoom buttons only with a script
        articles = check_page(report, path.read_text(encoding="utf-8")).find_all("article")
        assert seen["articles"] == len(articles) > 0, name
        assert seen["scrollWidth"] <= width, (name, seen)


@pytest.fixture(scope="module")
def print_browser(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chromium-print")
    chromium = Chromium(str(workdir), PRINT_WIDTH)
    try:
        yield chromium, workdir
    finally:
        chromium.close()


@pytest.mark.parametrize("name", list(REPORTS))
def test_the_page_prints(name, pages, print_browser):
    """Print media at an A4 width: nothing sideways, every folded part open, the tools hidden."""
    chromium, workdir = print_browser
    _report_doc, path = pages[name]
    target, session = chromium.open(str(path), PRINT_WIDTH, media="print")
    seen = chromium.evaluate(session, MEASURE)
    chromium.screenshot(session, workdir / f"{name}-print.png",
                        {"x": 0, "y": 0, "width": PRINT_WIDTH, "height": min(seen["height"], MAX_SHOT_HEIGHT)})
    pdf = base64.b64decode(chromium.send("Page.printToPDF", session, printBackground=True)["data"])
    chromium.close_tab(target)
    assert seen["scrollWidth"] <= PRINT_WIDTH, seen
    assert seen["hidden"] == 0 and seen["tools"] == "none", seen
    assert pdf.startswith(b"%PDF-")
