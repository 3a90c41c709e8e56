// Languages offered by the page: the desktop client's list (client_gui/languages.py), kept in
// step by a test. Every one is spoken by Whisper and covered by NLLB-200; the gateway has the
// final word and answers an unsupported choice with an `error` message, shown on the page.

export const LANGUAGES = {
  en: "English",
  es: "Spanish",
  fr: "French",
  de: "German",
  it: "Italian",
  pt: "Portuguese",
  nl: "Dutch",
  pl: "Polish",
  ru: "Russian",
  uk: "Ukrainian",
  tr: "Turkish",
  ar: "Arabic",
  hi: "Hindi",
  zh: "Chinese",
  ja: "Japanese",
  ko: "Korean",
  sv: "Swedish",
  cs: "Czech",
  el: "Greek",
  vi: "Vietnamese",
};

export const SOURCE_CHOICES = [["auto", "Auto-detect"], ...Object.entries(LANGUAGES)];
export const TARGET_CHOICES = [[null, "None"], ...Object.entries(LANGUAGES)];

export function languageName(code) {
  return LANGUAGES[code] || code;
}
