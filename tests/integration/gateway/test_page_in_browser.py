"""The page's modules and rendering in a real Chromium, against a scripted gateway.

The page is served by ``gateway.routes.page`` on a small aiohttp server; the gateway side is a
scripted WebSocket injected before the page's scripts (the boundary: these tests are about what
the page does with protocol messages, the real gateway is in tests/e2e/test_web_page.py). The
transcript model and the exports are checked through the modules themselves, imported in the
page.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from common.embedded_redis import free_port
from gateway.routes import page

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
T = TypeVar("T")

# A stand-in for the gateway: records what the page sends, answers config with ready (with a
# resume secret), and lets the test push server messages with window.__gateway.push(msg).
SCRIPTED_GATEWAY = """
window.__gateway = { sockets: [], sent: [], binary: 0, seq: 0,
  push(msg) { const ws = this.sockets.at(-1); ws.onmessage({ data: JSON.stringify(msg) }); },
};
window.WebSocket = class {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url) {
    this.url = url; this.readyState = 0; window.__gateway.sockets.push(this);
    setTimeout(() => { this.readyState = 1; this.onopen && this.onopen(); }, 10);
  }
  send(data) {
    if (typeof data !== "string") { window.__gateway.binary += 1; return; }
    window.__gateway.sent.push(data);
    const msg = JSON.parse(data);
    if (msg.type === "config") setTimeout(() => window.__gateway.push({ type: "ready", session_id: "s1",
      protocol: 1, sample_rate: 16000, source_language: "auto", target_language: null,
      resume_secret: "secret-" + window.__gateway.sockets.length }), 5);
  }
  close(code = 1000, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose && this.onclose({ code, reason }), 5);
  }
};
"""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    """gateway.routes.page on an aiohttp server in a thread (no gateway behind it)."""
    app = web.Application()
    handlers = page.add_routes(app)
    app.router.add_get("/", handlers.index)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them)")
    os.environ["SE_AVOID_STATS"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", "--window-size=1000,800", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def scripted(driver: Any, page_server: str) -> Iterator[Any]:
    """The page with the scripted gateway, capture started (Chromium's fake microphone)."""
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SCRIPTED_GATEWAY})
    try:
        driver.get(page_server)
        wait_for("the page", lambda: driver.execute_script("return document.body.dataset.ready"))
        driver.execute_script("document.getElementById('start').click()")
        wait_for("ready", lambda: driver.execute_script("return document.body.dataset.sessionId"))
        yield driver
    finally:
        driver.execute_script("if (document.getElementById('start').textContent === 'Stop') "
                              "document.getElementById('start').click()")
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def push(driver: Any, *messages: dict[str, Any]) -> None:
    for msg in messages:
        driver.execute_script("window.__gateway.push(arguments[0])", msg)


def text_of(driver: Any, selector: str) -> list[str]:
    return driver.execute_script(
        f"return [...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent.trim())")


def final(n: int, text: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"type": "final", "segment_id": f"s1:{n}", "text": text, "language": "en",
            "start": n * 2.0, "end": n * 2.0 + 1.5, "translation": None, "seq": seq, **extra}


def test_partials_finals_translations_and_vad(scripted: Any) -> None:
    d = scripted
    sent = [json.loads(m) for m in d.execute_script("return window.__gateway.sent")]
    assert sent[0] == {"type": "config", "sample_rate": 16000, "partials": True,
                       "source_language": "auto", "target_language": None}
    wait_for("audio frames", lambda: d.execute_script("return window.__gateway.binary") > 5)

    push(d, {"type": "vad", "event": "speech_start", "t": 0.4, "seq": 1})
    assert d.find_element("id", "vad").get_attribute("data-state") == "speech"
    push(d, {"type": "realtime", "segment_id": "s1:0", "text": "hello", "seq": 2})
    push(d, {"type": "realtime", "segment_id": "s1:0", "text": "hello wor", "seq": 3})
    partial = d.find_element("id", "partial")
    assert partial.text == "hello wor"  # replaced in place, not appended
    assert partial.value_of_css_property("color") != d.find_element("id", "transcript").value_of_css_property("color")
    push(d, {"type": "vad", "event": "speech_end", "t": 1.9, "seq": 4}, final(0, "Hello world.", 5))
    assert d.find_element("id", "vad").get_attribute("data-state") == "silence"
    assert partial.text == ""
    assert d.find_element("id", "transcript").text == "Hello world."
    # A stale partial of a segment already final, and a replayed final (old seq), change nothing.
    push(d, {"type": "realtime", "segment_id": "s1:0", "text": "hello wo", "seq": 6}, final(0, "Hello world.", 5))
    assert partial.text == "" and text_of(d, "#transcript .final") == ["Hello world."]
    push(d, {"type": "translation", "segment_id": "s1:0", "text": "Hola mundo.", "source_language": "en",
             "target_language": "es", "seq": 7})
    assert text_of(d, "#transcript .translation") == ["Hola mundo."]
    assert d.execute_script("return document.querySelector('#transcript .translation').lang") == "es"
    # The language badge is drawn from data-language, so #transcript's text stays the finals'.
    assert d.execute_script("return document.querySelector('#transcript .final').dataset.language") == "en"
    push(d, {"type": "error", "code": "translation_unavailable", "message": "no model", "seq": 8})
    assert "translation_unavailable" in d.find_element("id", "errors").text


def test_turn_end_groups_finals_into_paragraphs(scripted: Any) -> None:
    d = scripted
    # Streaming commits: several finals, then turn_end. Before the first turn_end the page cannot
    # know; the first one regroups the turn into one paragraph.
    push(d, final(0, "The quick brown fox", 1), final(1, "jumps over", 2), final(2, "the lazy dog.", 3))
    assert len(text_of(d, "#transcript .turn")) == 3
    push(d, {"type": "turn_end", "segment_id": "s1:2", "start": 0.0, "end": 5.5, "seq": 4})
    assert text_of(d, "#transcript .turn-text") == ["The quick brown fox jumps over the lazy dog."]
    push(d, final(3, "Thank you", 5), final(4, "very much.", 6),
         {"type": "turn_end", "segment_id": "s1:4", "start": 6.0, "end": 9.0, "seq": 7}, final(5, "Bye.", 8))
    assert text_of(d, "#transcript .turn-text") == [
        "The quick brown fox jumps over the lazy dog.", "Thank you very much.", "Bye."]


def test_reconnect_resumes_with_the_secret_and_drops_replays(scripted: Any) -> None:
    d = scripted
    push(d, final(0, "One.", 3), final(1, "Two.", 4))
    d.execute_script("window.__gateway.sockets.at(-1).close(1006, '')")  # the line drops
    wait_for("a second socket", lambda: d.execute_script("return window.__gateway.sockets.length") == 2, 10)
    wait_for("connected", lambda: d.find_element("id", "status").get_attribute("data-state") == "connected")
    sent = [json.loads(m) for m in d.execute_script("return window.__gateway.sent")]
    resume = [m for m in sent if m.get("session_id")][-1]
    assert resume["session_id"] == "s1" and resume["last_seq"] == 4 and resume["resume_secret"] == "secret-1"
    push(d, final(1, "Two.", 4), final(2, "Three.", 5))  # the gateway replays from last_seq
    assert text_of(d, "#transcript .final") == ["One.", "Two.", "Three."]
    # Dedupe is by seq for every message, not only results with a segment id.
    push(d, {"type": "error", "code": "replayed_error", "message": "old", "seq": 4})
    assert "replayed_error" not in d.find_element("id", "errors").text
    push(d, {"type": "error", "code": "new_error", "message": "new", "seq": 6})
    assert "new_error" in d.find_element("id", "errors").text


def test_the_detected_language_is_shown_and_pinned_with_one_click(scripted: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    d = scripted
    box, label, button = (d.find_element("id", name) for name in ("detected", "detected-language", "pin"))
    try:
        assert not box.is_displayed()  # nothing detected yet
        push(d, final(0, "Sì, andiamo.", 1, language="it", language_probability=0.93,
                      language_probability_scope="set"))
        wait_for("the detected language", box.is_displayed)
        assert label.text == "Detected: Italian (93 %)"
        assert button.text == "Pin Italian"
        assert button.get_attribute("aria-label") == "Pin Italian as the spoken language"
        # By keyboard: the button follows the select it sets.
        d.execute_script("document.getElementById('source').focus()")
        ActionChains(d).send_keys(Keys.TAB).perform()
        assert d.execute_script("return document.activeElement.id") == "pin"
        ActionChains(d).send_keys(Keys.ENTER).perform()
        sent = [json.loads(m) for m in d.execute_script("return window.__gateway.sent")]
        assert sent[-1] == {"type": "config", "source_language": "it", "target_language": None}
        assert Select(d.find_element("id", "source")).first_selected_option.get_attribute("value") == "it"
        assert not box.is_displayed()  # a pinned language is in the select: nothing to pin
        assert d.execute_script("return document.activeElement.id") == "source"
        saved = json.loads(d.execute_script("return localStorage.getItem('speech-pipeline.languages')"))
        assert saved["source_language"] == "it"
        # Back to auto-detect: the latest detection is offered again; a language the select does
        # not offer is shown without a button.
        Select(d.find_element("id", "source")).select_by_value("auto")
        assert box.is_displayed() and button.is_displayed()
        push(d, final(1, "ราชิ", 2, language="th", language_probability=0.41, language_probability_scope="all"))
        assert label.text == "Detected: th (41 %)" and not button.is_displayed()
        # A given language (an English-only model, scope hint) has no share to show.
        push(d, final(2, "Hello.", 3, language="en", language_probability=1.0, language_probability_scope="hint"))
        assert label.text == "Detected: English" and button.text == "Pin English"
        button.click()  # one click
        sent = [json.loads(m) for m in d.execute_script("return window.__gateway.sent")]
        assert sent[-1]["source_language"] == "en" and not box.is_displayed()
    finally:
        d.execute_script("localStorage.clear()")  # the next test's page starts with auto-detect


def test_exports_from_the_transcript_module(driver: Any, page_server: str) -> None:
    driver.get(page_server)
    wait_for("the page", lambda: driver.execute_script("return document.body.dataset.ready"))
    out = driver.execute_async_script(
        """
        const done = arguments[0];
        const src = document.querySelector("script[type=module]").src.replace("app.js", "transcript.js");
        import(src).then(({ Transcript, timestamp }) => {
          const t = new Transcript();
          t.addFinal({ segment_id: "a:0", text: "Hello <there> & --> you", start: 1.2, end: 2.89 });
          t.addTranslation({ segment_id: "a:0", text: "Hola", target_language: "es" });
          t.addTranslation({ segment_id: "a:1", text: "Adios" }); // before its final
          t.addFinal({ segment_id: "a:1", text: "Bye", start: 3661.5, end: 3662 });
          t.addFinal({ segment_id: "a:1", text: "Bye again" }); // duplicate id: ignored
          const turns = new Transcript(); // streaming commits: finals, then turn_end
          ["One", "two.", "Three"].forEach((text, i) => turns.addFinal({ segment_id: `b:${i}`, text }));
          const regrouped = turns.endTurn();
          turns.addFinal({ segment_id: "b:3", text: "four." });
          done({ txt: t.toTxt(), srt: t.toSrt(), vtt: t.toVtt(), ts: timestamp(3661.5, ","),
                 turns: turns.toTxt(), regrouped, srtWithoutTimes: turns.toSrt() });
        }).catch((e) => done({ error: String(e) }));
        """
    )
    assert "error" not in out, out
    assert out["ts"] == "01:01:01,500"
    assert out["regrouped"] is True and out["turns"] == "One two. Three\n\nfour.\n"
    # Finals without times get consecutive 2 s cues rather than none.
    assert out["srtWithoutTimes"].startswith("1\n00:00:00,000 --> 00:00:02,000\nOne\n\n2\n00:00:02,000 --> ")
    assert out["txt"] == "Hello <there> & --> you\nHola\n\nBye\nAdios\n"
    assert out["srt"] == ("1\n00:00:01,200 --> 00:00:02,890\nHello <there> & -> you\nHola\n\n"
                          "2\n01:01:01,500 --> 01:01:02,000\nBye\nAdios\n")
    assert out["vtt"] == ("WEBVTT\n\n00:00:01.200 --> 00:00:02.890\nHello &lt;there&gt; &amp; -&gt; you\nHola\n\n"
                          "01:01:01.500 --> 01:01:02.000\nBye\nAdios\n")


def test_no_console_errors_and_no_csp_violations(driver: Any, page_server: str) -> None:
    driver.get_log("browser")  # drop what earlier tests logged
    driver.get(page_server)
    wait_for("the page", lambda: driver.execute_script("return document.body.dataset.ready"))
    assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []


RESAMPLE_SINE = """
const [inputRate, freq, done] = arguments;
const base = document.querySelector("script[type=module]").src.replace("app.js", "");
(async () => {
  const ctx = new OfflineAudioContext(1, inputRate, inputRate); // one second
  await ctx.audioWorklet.addModule(base + "capture-worklet.js");
  const node = new AudioWorkletNode(ctx, "pcm16-capture", { numberOfInputs: 1, numberOfOutputs: 1,
    processorOptions: { targetRate: 16000, chunkSamples: 640 } });
  const chunks = [];
  node.port.onmessage = (e) => chunks.push(new Int16Array(e.data.pcm));
  const osc = new OscillatorNode(ctx, { frequency: freq });
  osc.connect(new GainNode(ctx, { gain: 0.5 })).connect(node).connect(ctx.destination);
  osc.start();
  await ctx.startRendering();
  await new Promise((resolve) => setTimeout(resolve, 300)); // port messages trail the rendering
  const pcm = chunks.flatMap((c) => Array.from(c)).slice(800); // skip the filter's warm-up
  let squares = 0, crossings = 0;
  for (let i = 0; i < pcm.length; i++) {
    squares += pcm[i] * pcm[i];
    if (i && (pcm[i - 1] < 0) !== (pcm[i] < 0)) crossings++;
  }
  done({ samples: pcm.length + 800, rms: Math.sqrt(squares / pcm.length), hz: crossings / 2 / (pcm.length / 16000) });
})().catch((e) => done({ error: String(e) }));
"""


@pytest.mark.parametrize("input_rate", [48000, 44100])
def test_worklet_resamples_to_16k_without_aliasing(driver: Any, page_server: str, input_rate: int) -> None:
    driver.get(page_server)
    wait_for("the page", lambda: driver.execute_script("return document.body.dataset.ready"))
    tone = driver.execute_async_script(RESAMPLE_SINE, input_rate, 1000)
    assert "error" not in tone, tone
    assert 15000 <= tone["samples"] <= 16000  # one second at 16 kHz, in whole 640-sample chunks
    assert abs(tone["hz"] - 1000) < 10  # same pitch
    assert abs(tone["rms"] - 0.5 / 2**0.5 * 32767) < 0.03 * 32767 * 0.5  # same level
    above = driver.execute_async_script(RESAMPLE_SINE, input_rate, 12000)  # above 8 kHz Nyquist
    assert "error" not in above, above
    assert above["rms"] < tone["rms"] / 100, (tone, above)  # more than 40 dB down, not aliased to 4 kHz
    print(f"\n{input_rate} Hz in: 1 kHz -> {tone}; 12 kHz -> rms {above['rms']:.1f}")
