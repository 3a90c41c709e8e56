// The language detected for the latest final, and a one-click "Pin <language>" (issue 20).
//
// While the spoken language is auto-detect, the page shows what the gateway detected (with
// its probability when it was detected rather than given) and a button that makes it the
// session's spoken language: the Spoken language select is set to it, which sends `config`
// mid-session and is remembered like any choice of the select. A pinned language is in the
// select already, so the box is hidden then. A language the select does not offer (a
// deployment that serves more) is shown without the button.

import { LANGUAGES, languageName } from "./languages.js";

export class LanguagePin {
  /** elements: { box, label, button, source }; onPin(code) makes `code` the spoken language. */
  constructor({ box, label, button, source }, onPin) {
    this.box = box;
    this.label = label;
    this.button = button;
    this.source = source;
    this.detected = null; // { language, probability, scope } of the latest final with text
    button.addEventListener("click", () => {
      if (this.detected && this.detected.language in LANGUAGES) onPin(this.detected.language);
    });
    this.render();
  }

  /** A `final` message. */
  observe(msg) {
    if (!msg.language || !(msg.text || "").trim()) return;
    this.detected = {
      language: msg.language,
      probability: Number.isFinite(msg.language_probability) ? msg.language_probability : null,
      scope: msg.language_probability_scope || null,
    };
    this.render();
  }

  /** A new session: nothing detected yet. */
  reset() {
    this.detected = null;
    this.render();
  }

  render() {
    const auto = (this.source.value || "auto") === "auto";
    this.box.hidden = !(auto && this.detected);
    if (this.box.hidden) return;
    const { language, probability, scope } = this.detected;
    const name = languageName(language);
    // The share is meaningful only for a detection (scope set or all), not for a given language.
    const detected = probability !== null && (scope === "set" || scope === "all");
    this.label.textContent = `Detected: ${name}${detected ? ` (${Math.round(probability * 100)} %)` : ""}`;
    this.button.hidden = !(language in LANGUAGES);
    this.button.textContent = `Pin ${name}`;
    this.button.setAttribute("aria-label", `Pin ${name} as the spoken language`);
    this.button.dataset.language = language;
  }
}
