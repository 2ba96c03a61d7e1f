#!/usr/bin/env python3
"""Opens the model report in a real headless browser (Chromium) and checks it.

    browser_test.py --fixture BUILD/tests/report/report_fixture --out BUILD/tests/report [--no-screenshots]
    browser_test.py --lm BUILD/apps/xtgrad-lm --user-lm BUILD/tests/report/attention_lm --out DIR [--data-root DIR]

With --lm, the page is a real one: a tiny LSTM and GRU trained by xtgrad-lm and a tiny attention cell trained by a
user's program (attention_lm) on the first lines of WikiText-2, then `attention_lm report` on the three. Every section
must be drawn (the attention view from the user cell's "attn" probe), with the same checks as below.

The fixture program writes compare.html (three word-level runs), char.html (one character-level run with some
sections absent) and minimal.html (one run with nothing recorded). For each page this checks that:
  - every section reached its expected state ("done", or "absent" where the document has no data for it) and drew
    what the data holds (one token span per passage token, one dot per embedded word, one sample box per sample,
    one heatmap cell per attention weight, ...);
  - the page recorded no script error, console error or warning, and no blocked request (#report-status, written
    by the page's boot script), and the browser saw no resource load (performance.getEntriesByType('resource'));
  - Chromium's own log has no console message, and its network log has no request made by the page;
and saves screenshots (the whole page and each section) in OUT/screenshots.

Then it checks the checker: two sabotaged copies of the page (an error in a section, a console error, a request
with and without the page's Content-Security-Policy) must each be caught.

Exit status: 0 pass, 1 fail, 77 (Meson's skip) when Chromium is not installed.
"""
import argparse
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SECTIONS = ["card", "curves", "gradient_flow", "gate_saturation", "units", "surprisal", "embeddings", "samples",
            "attention", "timing"]


def find_chromium():
    env = os.environ.get("XTGRAD_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, exe):
        self.exe = exe

    def run(self, url, extra, timeout=180):
        """Runs headless Chromium on url; returns (stdout, stderr, net-log events or None)."""
        with tempfile.TemporaryDirectory(prefix="xtgrad-chromium-") as tmp:
            net_log = os.path.join(tmp, "net.json")
            cmd = [self.exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
                   "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--log-level=0",
                   "--log-net-log=" + net_log, "--user-data-dir=" + os.path.join(tmp, "profile")] + extra + [url]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"chromium exited with {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
            events = None
            try:
                with open(net_log, encoding="utf-8") as f:
                    events = json.load(f)
            except (OSError, ValueError):
                events = None
            return p.stdout.decode("utf-8", errors="replace"), p.stderr.decode("utf-8", errors="replace"), events


def page_requests(net_log):
    """URLs of requests the page started (the browser's own background requests are not the page's)."""
    if net_log is None:
        return None
    types = {v: k for k, v in net_log.get("constants", {}).get("logEventTypes", {}).items()}
    urls = []
    for e in net_log.get("events", []):
        if types.get(e.get("type")) != "URL_REQUEST_START_JOB":
            continue
        p = e.get("params", {})
        if "url" not in p:  # the end of a job: its start names the URL
            continue
        if p.get("initiator") != "not an origin" or "file://" in str(p.get("network_isolation_key", "")):
            urls.append(p.get("url", "?"))
    return urls


class Dom(html.parser.HTMLParser):
    """Counts, per section, the elements the checks need, and reads the body's and sections' attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections = {}
        self.counts = {}
        self.body = {}
        self.status_text = None
        self._in_status = False
        self._current = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "section" and "data-section" in a:
            self._current = a["data-section"]
            self.sections[self._current] = a.get("data-state")
            self.counts[self._current] = {}
            self._depth = 0
        if self._current:
            if tag == "section":
                self._depth += 1
            classes = (a.get("class") or "").split()
            c = self.counts[self._current]
            keys = []
            if tag == "svg" and "chart" in classes:
                keys.append("charts")
            if tag == "span" and "tok" in classes:
                keys.append("tokens")
            if tag == "div" and "finder-row" in classes:
                keys.append("finder")
            if tag == "div" and "sample" in classes:
                keys.append("samples")
            if tag == "circle" and "pt" in classes:
                keys.append("points")
            if tag == "rect" and "cell" in classes:
                keys.append("cells")
            if tag == "div" and "nbr" in classes:
                keys.append("neighbours")
            if tag == "path":
                keys.append("paths")
            for k in keys:
                c[k] = c.get(k, 0) + 1
        if tag == "pre" and a.get("id") == "report-status":
            self._in_status = True
            self.status_text = ""

    def handle_endtag(self, tag):
        if tag == "pre" and self._in_status:
            self._in_status = False
        if tag == "section" and self._current:
            self._depth -= 1
            if self._depth <= 0:
                self._current = None

    def handle_data(self, data):
        if self._in_status:
            self.status_text += data


def inspect(browser, path):
    """Loads a page; returns (dom, status, console lines, page requests)."""
    out, err, net = browser.run("file://" + os.path.abspath(path),
                                ["--virtual-time-budget=10000", "--window-size=1440,1000", "--dump-dom"])
    dom = Dom()
    dom.feed(out)
    status = None
    if dom.status_text is not None:
        try:
            status = json.loads(dom.status_text)
        except ValueError:
            status = None
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    return dom, status, console, page_requests(net)


def expected_states(doc):
    runs = doc["runs"]
    return {s: ("done" if any(s in r for r in runs) else "absent") for s in SECTIONS}


def check_page(browser, path, doc):
    """Returns a list of failures for one fixture page."""
    fails = []
    t0 = time.time()
    dom, status, console, requests = inspect(browser, path)
    elapsed = time.time() - t0
    if status is None:
        return [f"{path}: no #report-status in the DOM (the page's script did not run?)"], None
    want = expected_states(doc)
    for s in SECTIONS:
        if dom.sections.get(s) != want[s]:
            fails.append(f"section {s}: state {dom.sections.get(s)!r}, expected {want[s]!r}")
    if not status.get("done"):
        fails.append("the page never finished drawing (status.done is false)")
    for e in status.get("errors", []):
        fails.append(f"page error: {e}")
    for b in status.get("blocked", []):
        fails.append(f"blocked request: {b}")
    for r in status.get("resources", []):
        fails.append(f"resource loaded: {r}")
    if dom.body.get("data-report") != "done":
        fails.append(f"body data-report={dom.body.get('data-report')!r}, expected 'done'")
    for line in console:
        fails.append(f"console message: {line.strip()}")
    if requests is None:
        fails.append("Chromium wrote no readable network log")
    else:
        for u in requests:
            fails.append(f"network request by the page: {u}")

    # What each section drew, against the data.
    runs = doc["runs"]
    first = lambda key: next((r for r in runs if key in r), None)
    c = dom.counts

    def need(section, key, n, exact=True):
        got = c.get(section, {}).get(key, 0)
        if (got != n) if exact else (got < n):
            fails.append(f"section {section}: {got} {key}, expected {'' if exact else 'at least '}{n}")

    if want["curves"] == "done":
        need("curves", "charts", 5, exact=False)
    if want["gradient_flow"] == "done":
        need("gradient_flow", "charts", 1)
    if want["gate_saturation"] == "done":
        panels = sum(len(r["gate_saturation"]["gates"]) for r in runs if "gate_saturation" in r)
        need("gate_saturation", "charts", panels)
        need("gate_saturation", "points", sum(len(g["left"]) for r in runs if "gate_saturation" in r for g in r["gate_saturation"]["gates"]))
    if want["units"] == "done":
        r = first("units")
        need("units", "tokens", len(r["passage"]["tokens"]))
        need("units", "finder", len(r["units"].get("top", [])))
        need("units", "charts", 1)
    if want["surprisal"] == "done":
        r = first("surprisal")
        need("surprisal", "tokens", len(r["passage"]["tokens"]))
    if want["embeddings"] == "done":
        r = first("embeddings")
        need("embeddings", "points", len(r["embeddings"]["points"]["words"]))
        need("embeddings", "neighbours", len(r["embeddings"].get("neighbours", [])))
    if want["samples"] == "done":
        need("samples", "samples", sum(len(r["samples"]["items"]) for r in runs if "samples" in r))
    if want["attention"] == "done":
        m = first("attention")["attention"]["maps"][0]
        need("attention", "cells", len(m["queries"]) * len(m["keys"]))
    if want["timing"] == "done":
        need("timing", "charts", sum(1 for r in runs if "timing" in r))
    print(f"  {os.path.basename(path)}: {os.path.getsize(path) / 1e6:.2f} MB, drawn in {status.get('render_ms', '?')} ms "
          f"(Chromium start, load and checks {elapsed:.1f} s); "
          f"sections: {', '.join(f'{s}={dom.sections.get(s)}' for s in SECTIONS)}")
    return fails, status


def screenshots(browser, path, shots_dir, status, sections, extra):
    """The whole page, then each section alone (#only=...), and extra (label, fragment, section) views."""
    name = os.path.splitext(os.path.basename(path))[0]
    url = "file://" + os.path.abspath(path)
    heights = status.get("section_heights", {})
    header = 200  # the page's header above the sections, and some margin
    shots = [("full", max(1000, min(int(status.get("height", 6000)), 16000)), "")]
    shots += [(s, heights.get(s, 800) + header, "#only=" + s) for s in sections]
    shots += [(label, heights.get(s, 800) + header, frag) for label, frag, s in extra]
    saved = []
    for label, h, frag in shots:
        file = os.path.join(shots_dir, f"{name}-{label}.png")
        if os.path.exists(file):
            os.remove(file)
        browser.run(url + frag, ["--virtual-time-budget=10000", f"--window-size=1440,{min(h, 4000)}",
                                 "--run-all-compositor-stages-before-draw", "--screenshot=" + file])
        if not os.path.exists(file):
            raise RuntimeError(f"Chromium wrote no screenshot {file}")
        saved.append(file)
    return saved


def check_the_checker(browser, page, workdir):
    """The checks must catch a broken page: returns failures when they do not."""
    fails = []
    with open(page, encoding="utf-8") as f:
        text = f.read()
    inject = ("<script>console.error('planted console error');"
              "new Image().src='http://planted.invalid/pixel.png';</script>\n</body>")
    broken_section = text.replace("function renderTiming(body) {", "function renderTiming(body) { null.planted;", 1)
    if broken_section == text:
        return ["check_the_checker: could not plant an error in renderTiming (renamed?)"]
    # 1: with the page's Content-Security-Policy: a section error, a console error, a blocked request.
    a = os.path.join(workdir, "sabotaged-csp.html")
    with open(a, "w", encoding="utf-8") as f:
        f.write(broken_section.replace("</body>", inject, 1))
    dom, status, console, requests = inspect(browser, a)
    if dom.sections.get("timing") != "error":
        fails.append(f"sabotaged page: section timing state {dom.sections.get('timing')!r}, expected 'error'")
    if not status or not any("planted console error" in e for e in status.get("errors", [])):
        fails.append("sabotaged page: the console error was not recorded")
    if not status or not any("planted.invalid" in b for b in status.get("blocked", [])):
        fails.append("sabotaged page: the blocked request was not recorded")
    if not any("planted console error" in line for line in console):
        fails.append("sabotaged page: Chromium's log has no console message")
    if dom.body.get("data-report") != "error":
        fails.append(f"sabotaged page: body data-report={dom.body.get('data-report')!r}, expected 'error'")
    # 2: without it: the request reaches the network stack and the resource list.
    b = os.path.join(workdir, "sabotaged-no-csp.html")
    with open(b, "w", encoding="utf-8") as f:
        f.write(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text, 1).replace("</body>", inject, 1))
    dom, status, console, requests = inspect(browser, b)
    if not requests or not any("planted.invalid" in u for u in requests):
        fails.append(f"sabotaged page without CSP: the network log shows no request by the page ({requests})")
    if not status or not any("planted.invalid" in r for r in status.get("resources", [])):
        fails.append("sabotaged page without CSP: the resource list does not show the request")
    for p in (a, b):
        os.remove(p)
    return fails


def make_corpus(folder, root):
    """A small word-level corpus: the first lines of WikiText-2 when it is there, else made-up sentences."""
    os.makedirs(folder, exist_ok=True)
    limits = {"train": 12000, "valid": 3000, "test": 800}
    for split, limit in limits.items():
        src = os.path.join(root or "", "wikitext-2", split + ".txt")
        lines, tokens = [], 0
        if root and os.path.exists(src):
            with open(src, encoding="utf-8") as f:
                for line in f:
                    if tokens >= limit:
                        break
                    lines.append(line)
                    tokens += len(line.split()) + 1
        else:
            words = ('the cat ( a big one ) sat on " the mat " , and the dog ran away . \n').split(" ")
            while tokens < limit:
                lines.append(" ".join(words))
                tokens += len(words)
        with open(os.path.join(folder, split + ".txt"), "w", encoding="utf-8") as f:
            f.writelines(lines)


def run_program(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {p.returncode}:\n{out[-3000:]}")
    return out


def page_document(page):
    """The report document inlined in a page."""
    with open(page, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    if not m:
        raise RuntimeError(f"{page}: no inlined report document")
    return json.loads(m.group(1))


def real_report(browser, args):
    """Trains three tiny models, makes their report with the real command, checks it in the browser."""
    work = os.path.join(args.out, "real")
    if os.path.isdir(work):
        shutil.rmtree(work)
    data = os.path.join(work, "data")
    make_corpus(data, args.data_root)
    small = ["--data", data, "--emsize", "16", "--nhid", "16", "--batch_size", "8", "--bptt", "12", "--epochs", "2",
             "--max-batches", "20", "--log-interval", "5", "--threads", "1", "--quiet"]
    t0 = time.time()
    run_program([args.lm, "train", "--model", "LSTM", "--save", "lstm.safetensors"] + small, work)
    run_program([args.lm, "train", "--model", "GRU", "--save", "gru.safetensors"] + small, work)
    run_program([args.user_lm, "train", "--model", "ATTN", "--save", "attn.safetensors"] + small, work)
    t1 = time.time()
    log = run_program([args.user_lm, "report", "--checkpoint", "attn.safetensors", "--compare", "lstm.safetensors",
                       "gru.safetensors", "--out", "real.html", "--trace", "real-trace.json", "--timing-batches", "8",
                       "--position-tokens", "2000", "--windows", "20", "--threads", "1"], work)
    print(f"  three tiny models trained in {t1 - t0:.1f} s; report made in {time.time() - t1:.1f} s")
    print("".join("    " + line + "\n" for line in log.splitlines() if line.startswith("wrote")), end="")
    page = os.path.join(work, "real.html")
    doc = page_document(page)
    failures = []
    names = [r["name"] for r in doc["runs"]]
    # runs[0] is the attention cell (no sigmoid gates), runs[1:] the LSTM and GRU (no attention)
    for s in SECTIONS:
        want = [0] if s == "attention" else [1, 2] if s == "gate_saturation" else [0, 1, 2]
        missing = [names[i] for i in want if s not in doc["runs"][i]]
        if missing:
            failures.append(f"real.html: section {s} missing from runs {missing}")
    fails, status = check_page(browser, page, doc)
    failures += [f"real.html: {f}" for f in fails]
    with open(os.path.join(work, "real-trace.json"), encoding="utf-8") as f:
        trace = json.load(f)
    batches = sum(1 for e in trace.get("traceEvents", []) if e.get("ph") == "X" and e.get("name") == "batch")
    if batches != 8 * len(names):
        failures.append(f"real-trace.json: {batches} batch spans, expected {8 * len(names)}")
    shots = []
    if not args.no_screenshots and status:
        shots_dir = os.path.join(args.out, "screenshots")
        os.makedirs(shots_dir, exist_ok=True)
        # the views only a real model fills (the fixture test has screenshots of every section): few, for CI's time
        shots = screenshots(browser, page, shots_dir, status, ["gradient_flow", "units", "attention"], [])
    return failures, shots


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixture", help="the report_fixture program")
    ap.add_argument("--lm", help="xtgrad-lm: check a report made by the real command instead of the fixtures")
    ap.add_argument("--user-lm", help="with --lm: the user program with the attention cell (attention_lm)")
    ap.add_argument("--data-root", default=os.environ.get("XTGRAD_DATA"), help="the folder holding wikitext-2")
    ap.add_argument("--out", required=True, help="folder for the pages and screenshots")
    ap.add_argument("--no-screenshots", action="store_true")
    args = ap.parse_args()
    if bool(args.fixture) == bool(args.lm) or bool(args.lm) != bool(args.user_lm):
        ap.error("give --fixture, or --lm with --user-lm")

    exe = find_chromium()
    if not exe:
        print("SKIP: Chromium not found (apt-get install chromium, or set XTGRAD_CHROMIUM)")
        return 77
    browser = Browser(exe)
    os.makedirs(args.out, exist_ok=True)
    if args.lm:
        failures, shots = real_report(browser, args)
        if shots:
            print(f"  {len(shots)} screenshots in {os.path.dirname(shots[0])}")
        for f in failures:
            print("FAIL:", f)
        print("FAIL" if failures else "PASS")
        return 1 if failures else 0
    p = subprocess.run([args.fixture, args.out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    print(p.stdout.decode(errors="replace"), end="")
    if p.returncode != 0:
        print(f"FAIL: {args.fixture} exited with {p.returncode}")
        return 1

    failures = []
    pages = [("compare", SECTIONS, [("units-rnn", "#only=units&unit=2,1,h,17", "units"),
                                    ("surprisal-tip", "#only=surprisal&tip=surprisal,57", "surprisal")]),
             ("char", ["units", "surprisal", "attention", "gate_saturation", "embeddings", "curves", "card"],
              [("units-line", "#only=units&unit=0,1,c,42", "units")]),
             ("minimal", [], [])]
    shots = []
    for name, shot_sections, hashes in pages:
        page = os.path.join(args.out, name + ".html")
        with open(os.path.join(args.out, name + ".json"), encoding="utf-8") as f:
            doc = json.load(f)
        size = os.path.getsize(page)
        if size > 10e6:
            failures.append(f"{name}.html: {size / 1e6:.1f} MB, over the 10 MB aim")
        fails, status = check_page(browser, page, doc)
        failures += [f"{name}.html: {f}" for f in fails]
        if not args.no_screenshots and status:
            shots_dir = os.path.join(args.out, "screenshots")
            os.makedirs(shots_dir, exist_ok=True)
            shots += screenshots(browser, page, shots_dir, status, shot_sections, hashes)

    # The trace written alongside parses and has the fields trace viewers need.
    with open(os.path.join(args.out, "trace.json"), encoding="utf-8") as f:
        trace = json.load(f)
    for e in trace.get("traceEvents", []):
        if e.get("ph") == "X" and not all(k in e for k in ("name", "ph", "ts", "dur", "pid", "tid")):
            failures.append(f"trace.json: event without a required field: {e}")

    failures += [f"checking the checker: {f}" for f in check_the_checker(browser, os.path.join(args.out, "compare.html"), args.out)]

    if shots:
        print(f"  {len(shots)} screenshots in {os.path.dirname(shots[0])}")
    if failures:
        for f in failures:
            print("FAIL:", f)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
