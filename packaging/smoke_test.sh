#!/usr/bin/env bash
# Smoke test of the frozen app in dist/Labelscope (after `pyinstaller build.spec`): it runs
# with an empty environment (no virtual environment, no PYTHONPATH, a fresh HOME), so only
# the bundle's own interpreter and libraries can be used. It checks that
#   1. the executable starts, prints its version, and `doctor` imports torch, torchvision
#      and OpenCV and finds the compiled beam search,
#   2. --screenshot renders the main window (both workbenches) to a PNG offscreen,
#   3. the shipped model reads formula images through the CLI inside the bundle: images the
#      bundle draws itself, and the real samples of ../shared/data when they are there;
#   4. worker processes work frozen: a few training steps with a DataLoader worker and a
#      data set drawn by two generator processes;
#   5. the installed ImageNet weights scan offline: real photos from ../shared/data when
#      they are there (a dog photo's cat and dog probability must go to the dog breeds),
#      else images drawn here.
set -euo pipefail
cd "$(dirname "$0")/.."
app="${1:-dist/Labelscope}/Labelscope"
[ -x "$app" ] || { echo "no executable at $app: build it with pyinstaller build.spec" >&2; exit 1; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
run() {
    env -i HOME="$scratch/home" PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen \
        LANG=C.UTF-8 "$app" "$@"
}

run --version
# doctor imports torch, torchvision (with its compiled ops) and OpenCV inside the bundle
run doctor > "$scratch/doctor.txt" || { cat "$scratch/doctor.txt"; exit 1; }
# the compiled beam search travels with the bundle when the build environment had it
if python -c "import core.formula._beam" 2> /dev/null; then
    grep -q "CTC beam search *compiled" "$scratch/doctor.txt" \
        || { echo "the bundle lacks the compiled beam search (core/formula/_beam)" >&2; exit 1; }
fi
run --screenshot "$scratch/pets.png" --size 1200x800
run --screenshot "$scratch/formulas.png" --workbench formulas --size 1200x800
if [ -n "${SMOKE_KEEP:-}" ]; then cp "$scratch"/*.png "$SMOKE_KEEP"/; fi
for shot in pets formulas; do
    head -c 8 "$scratch/$shot.png" | od -An -tx1 | grep -q "89 50 4e 47" \
        || { echo "$shot.png is not a PNG" >&2; exit 1; }
done
echo "screenshots: $(wc -c < "$scratch/pets.png") and $(wc -c < "$scratch/formulas.png") bytes"

run formula generate --out "$scratch/set" --count 6 --style captcha --form level1 --seed 11 \
    --workers 2 > /dev/null
checked=0
line=0
while read -r first rest; do
    # 'i.png text [value]' or, for line i, 'text [value]' of i.png
    if [[ "$first" == *.png ]]; then name="$first"; text="${rest%% *}"; else name="$line.png"; text="$first"; fi
    line=$((line + 1))
    read_text="$(run formula recognize "$scratch/set/$name" | cut -f2)"
    if [ "$read_text" != "$text" ]; then
        echo "misread $name: $read_text, not $text" >&2
        exit 1
    fi
    checked=$((checked + 1))
done < "$scratch/set/labels.txt"
samples=../shared/data/formula_samples
if [ -f "$samples/SOURCES.tsv" ]; then
    while IFS=$'\t' read -r name text _rest; do
        read_text="$(run formula recognize "$samples/$name" | cut -f2)"
        if [ "$read_text" != "$text" ]; then
            echo "misread $samples/$name: $read_text, not $text" >&2
            exit 1
        fi
        checked=$((checked + 1))
    done < <(tail -n +2 "$samples/SOURCES.tsv")
fi
echo "smoke test passed: $checked formula images read right by the bundle"
run formula train --out "$scratch/run" --steps 4 --batch-size 4 --val-size 8 --val-every 2 \
    --workers 1 > /dev/null
[ -f "$scratch/run/best.pt" ] || { echo "frozen training wrote no best.pt" >&2; exit 1; }
echo "smoke test passed: training with a worker process ran in the bundle"

pets="$scratch/pets/train"
mkdir -p "$pets"
photos=../shared/data/dogs_vs_cats/train
if [ -d "$photos" ]; then
    for name in dog.1.jpg dog.2.jpg cat.1.jpg cat.2.jpg; do cp "$photos/$name" "$pets/"; done
else
    python - "$pets" <<'PY'
import sys
from PIL import Image
for i, colour in enumerate(((200, 120, 40), (40, 90, 200))):
    Image.new("RGB", (320, 240), colour).save(f"{sys.argv[1]}/{('dog', 'cat')[i]}.{i}.jpg")
PY
fi
run pets scan "$scratch/pets" --offline --train-only --no-label-issues > /dev/null
run pets flags "$scratch/pets" --csv "$scratch/flags.csv" > /dev/null
if [ -d "$photos" ]; then
    python - "$scratch/flags.csv" <<'PY'
import csv, sys
rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(sys.argv[1]))}
dog = rows["dog.1.jpg"]
if float(dog["dog_mass"]) < 0.5:
    sys.exit(f"the bundle's scan does not see a dog in dog.1.jpg: {dog}")
print("top classes of dog.1.jpg:", dog[next(k for k in dog if k.startswith("top_"))])
PY
fi
echo "smoke test passed: the bundle scanned with the installed ImageNet weights, offline"
