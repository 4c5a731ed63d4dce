#!/usr/bin/env bash
# The demo: installs what it needs (nginx, aiosmtpd), builds the binaries
# with the `quick` profile (release code without LTO: minutes, not a quarter
# of an hour, on a small machine) and runs bgw-demo, which starts the whole
# system on loopback (nginx, blue and green test apps with their agents, the
# watchdog on an embedded SQLite file, the checker, the prober, a Slack
# receiver and an SMTP server), plays a toggle, a broken release rolled back
# on its own, a stuck job and the watchdog's own death, then keeps
# everything running until Ctrl-C, printing where to look. Where the Docker
# engine allows a swarm, blue and green are swarm services built from
# nothing (deploy/build-images.sh); BGW_DEMO_MODE=plain forces processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --profile quick --locked --workspace --bins
exec target/quick/bgw-demo
