#!/usr/bin/env bash
# Blender for the mesh export's client test (tests/test_export_mesh.py): Blender as a
# Python module, bpy 4.5 LTS from the package index (a cp311 wheel, ~370 MB), in its own
# virtual environment .venv-bpy (git-ignored): bpy pins numpy 1.26, which must not
# replace the project's numpy. Safe to run twice. PYTHON selects the interpreter (3.11).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="$repo/.venv-bpy"
if "$venv/bin/python" -c "import bpy" 2>/dev/null; then
    echo "[blender] bpy already in $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "bpy==4.5.4"
"$venv/bin/python" -c "import bpy; print('[blender] bpy', bpy.app.version_string, 'in $venv')"
