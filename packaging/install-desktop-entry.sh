#!/usr/bin/env bash
# Adds Labelscope to the desktop's application menu (Linux): run it from the unpacked
# Labelscope folder, or give that folder as the argument. Undo with --remove.
set -euo pipefail
bundle="$(cd "${1:-$(dirname "$0")}" && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
if [ "${1:-}" = "--remove" ]; then
    rm -f "$apps/labelscope.desktop" "$icons/labelscope.svg"
    exit 0
fi
if [ ! -x "$bundle/Labelscope" ]; then
    echo "no Labelscope executable in $bundle" >&2
    exit 1
fi
mkdir -p "$apps" "$icons"
cp "$bundle/labelscope.svg" "$icons/labelscope.svg"
sed "s|^Exec=Labelscope|Exec=\"$bundle/Labelscope\"|" "$bundle/labelscope.desktop" \
    > "$apps/labelscope.desktop"
echo "installed $apps/labelscope.desktop"
