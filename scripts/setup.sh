#!/usr/bin/env bash
# Installs everything the service and its tests need on a fresh Debian machine with Python 3.11+:
# redis-server (apt, when absent), DejaVu fonts for the PDF report, dciodvfy (dicom3tools) and
# poppler-utils for the artifact tests, Orthanc and its DICOMweb plugin for the DICOM node's tests,
# a virtual environment in .venv with the project and its dev and ui extras, and the buf CLI (npm)
# in .tools/. Safe to run again; it only adds what is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v redis-server >/dev/null || apt_install redis-server
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || apt_install fonts-dejavu-core
command -v dciodvfy >/dev/null || apt_install dicom3tools
command -v pdftotext >/dev/null || apt_install poppler-utils
# A real PACS for the DICOM node's tests (tests/dicom/orthanc.py) and for docs/dicom.md's walk-through.
[ -x /usr/sbin/Orthanc ] || apt_install orthanc
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || apt_install orthanc-dicomweb
if [ "${DENTALAI_SKIP_BROWSER:-}" != 1 ] && [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi
if ! command -v npm >/dev/null; then apt_install npm; fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then "$python" -m venv .venv; fi
# The stamp skips a slow pip resolve when pyproject.toml has not changed since the last install.
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev,ui]"
  rm -f .venv/.installed-*; touch "$stamp"
fi

if [ ! -x .tools/node_modules/.bin/buf ]; then
  npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@1.75.0 >/dev/null
fi
