// Package browser holds the end-to-end test of the operator pages in a real browser: it
// runs the demo in-process, drives headless Chromium (Debian's chromium package, installed
// by scripts/deps.sh) through the login, the batch list and a batch detail in English and
// Chinese, and saves full-page screenshots (CRM_SCREENSHOT_DIR, default screenshots/ at the
// repository root).
package browser
