#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine:
# nginx and its Lua module (proxy.mode = "live"), wrk, openssl (the SMTP
# tests' private CA), chromium and chromium-driver (the status page's browser
# test) from Debian's packages, aiosmtpd (a real SMTP server) from PyPI.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || need_apt+=(libnginx-mod-http-lua)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# The status page's browser test: headless Chromium driven over WebDriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null; }
fi
# Debian's package starts a system nginx on :80; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx >/dev/null 2>&1 || true; fi

if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "install-deps: pip install aiosmtpd" >&2
  python3 -m pip install --quiet aiosmtpd
fi
