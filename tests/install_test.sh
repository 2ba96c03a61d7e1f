#!/usr/bin/env bash
# The language-model library as a user gets it: install into a temporary prefix, build the custom-cell example
# outside the source tree with the one command docs/custom-cell.md gives, and use the result as a user would.
#   tests/install_test.sh BUILD_DIR SOURCE_DIR [EXTRA_CXXFLAGS]
set -euo pipefail
build=$1
src=$2
extra=${3:-}
work=$(mktemp -d /tmp/xtgrad-install-XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "install test: $*" >&2; exit 1; }

meson install -C "$build" --destdir "$work/root" --no-rebuild --quiet
pc=$(dirname "$(find "$work/root" -name xtgrad-lm.pc | head -n 1)")
[ -n "$pc" ] || fail "no xtgrad-lm.pc installed"
export PKG_CONFIG_PATH=$pc
libdir=$(pkg-config --variable=libdir xtgrad-lm)

mkdir "$work/user"
cp "$src/apps/examples/custom_cell.cpp" "$work/user/"
cd "$work/user"
# the command of docs/custom-cell.md, plus an rpath (or LD_LIBRARY_PATH) for a prefix outside the loader's path
# shellcheck disable=SC2046,SC2086
c++ -std=c++17 -O2 $extra custom_cell.cpp $(pkg-config --cflags --libs xtgrad-lm) -Wl,-rpath,"$libdir" -o mylm

# a small corpus: the first lines of WikiText-2 when the shared data is there, made-up sentences otherwise
mkdir data
for split in train valid test; do
    if [ -f "${XTGRAD_DATA:-}/wikitext-2/$split.txt" ]; then
        head -n "$([ $split = train ] && echo 60 || echo 20)" "$XTGRAD_DATA/wikitext-2/$split.txt" > "data/$split.txt"
    else
        for i in $(seq 40); do echo " the cat sat on the mat and the dog ran far away "; done > "data/$split.txt"
    fi
done

./mylm gradcheck --model MGU | tee gradcheck.log
grep -q "^ok:" gradcheck.log || fail "gradcheck of MGU did not pass"
small="--emsize 16 --nhid 16 --batch_size 4 --bptt 8 --threads 1 --log-interval 5"
./mylm train --model MGU --data data $small --epochs 2 --max-batches 20 --save m.safetensors > train.log
grep -q "End of training" train.log || fail "training did not finish"
grep -q "MGU 2x16" train.log || fail "the log does not name the cell"
./mylm eval --checkpoint m.safetensors --data data | grep -q "MGU 2x16.*ppl" || fail "eval"
[ "$(./mylm generate --checkpoint m.safetensors --words 20 | wc -w)" -ge 1 ] || fail "generate"
./mylm train --model MGU --data data $small --epochs 2 --max-batches 20 --save r.safetensors --stop-after-batches 7 > /dev/null
./mylm train --resume r.resume.safetensors --data data > resume.log
grep -q "resumed from" resume.log || fail "resume"
# stock xtgrad-lm refuses the checkpoint, naming the cell
if "$build/apps/xtgrad-lm" eval --checkpoint m.safetensors --data data > stock.log 2>&1; then
    fail "stock xtgrad-lm loaded an MGU checkpoint"
fi
grep -q "cell 'MGU', which xtgrad-lm does not know" stock.log || fail "stock error does not name MGU: $(cat stock.log)"

# the five published cells of apps/examples, built the same way from their headers
mkdir "$work/zoo"
cp "$src"/apps/examples/cell_zoo.cpp "$src"/apps/examples/{peephole_lstm,ln_lstm,indrnn,sru,attn_lstm}.hpp "$work/zoo/"
cd "$work/zoo"
# shellcheck disable=SC2046,SC2086
c++ -std=c++17 -O2 $extra cell_zoo.cpp $(pkg-config --cflags --libs xtgrad-lm) -Wl,-rpath,"$libdir" -o cell_zoo
./cell_zoo gradcheck --model ATTN_LSTM --cell-option k=2 --padded | grep -q "^ok:" || fail "gradcheck of ATTN_LSTM"
echo "install test: ok"
