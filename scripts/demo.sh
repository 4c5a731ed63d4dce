#!/usr/bin/env bash
# The demo: installs what it needs (nginx, aiosmtpd), builds the release
# binaries and runs bgw-demo, which starts the whole system on loopback
# (nginx, blue and green test apps with their agents, the watchdog on an
# embedded SQLite file, the checker, the prober, a Slack receiver and an SMTP
# server) and plays a toggle, a broken release rolled back on its own, a
# stuck job and the watchdog's own death. Everything stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked --workspace --bins
exec target/release/bgw-demo
