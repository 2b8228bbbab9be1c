# Shared set-up for scripts/run and scripts/test: a project virtualenv with botkit and its dev
# tools installed, refreshed whenever pyproject.toml changes. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${BOTKIT_VENV:-$ROOT/.venv}"

pick_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "botkit needs Python >= 3.11; none was found on PATH" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PYTHON="$(pick_python)"
  echo "==> creating $VENV with $PYTHON" >&2
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.botkit-installed"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "==> installing botkit and its dev tools into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[dev,bench]"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
