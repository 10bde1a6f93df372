// Package browser holds the end-to-end tests of the operator pages in a real browser
// (headless Chromium: Debian's chromium package, installed by scripts/deps.sh). One runs
// the demo in-process and checks the login, the batch list and a batch detail in English
// and Chinese; the other starts an empty all-in-one process and does an operator's work
// from the pages alone: register the host, test its connection, import keys with a
// dry-run preview, import them for real and follow the batch to its end. Both save
// full-page screenshots of every page they visit (CRM_SCREENSHOT_DIR, default
// screenshots/ at the repository root).
package browser
