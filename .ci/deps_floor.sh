#!/usr/bin/env bash
# lrkit at its declared floors: what a user with the oldest allowed packages gets.
#
# Resolves lrkit[all] plus the dev group with `uv pip compile --resolution lowest-direct` (every direct
# dependency at its floor; numpy at 2.0.0), installs that into a fresh venv under /tmp and runs each part
# of lrkit on it: the CLI (plot, gallery, YAML/TOML specs, find, lab on digits with Schedule-Free and
# Prodigy, an experiment file on MNIST-1D, tune), the Keras, optax, torch, transformers and Lightning
# examples, and a float-LR ReduceOnPlateau in Keras. Prints PASS/FAIL per part and exits non-zero on a
# FAIL. With --tests it also runs the test files of the parts that depend on a floor.
#
# It downloads packages from PyPI (about 1 GB, 2.2 GB installed) and takes 5-10 minutes: not part of
# .ci/run or `make test`. torch is never resolved: TORCH (default 2.13.0) is installed first with pip, as
# the machine's own build (a CPU wheel where one lies on disk), and pinned for the resolver.
#
#     bash .ci/deps_floor.sh                  # the floors
#     NUMPY=2.4.6 bash .ci/deps_floor.sh      # the floors with a newer numpy
#     bash .ci/deps_floor.sh --tests --keep   # also the tests; keep the venv (its path is printed)
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3.11}"
torch="${TORCH:-2.13.0}"
tests=0
keep=0
for arg in "$@"; do
    case "$arg" in
        --tests) tests=1 ;;
        --keep) keep=1 ;;
        *) echo "deps_floor.sh: unknown argument $arg (expected --tests, --keep)" >&2; exit 2 ;;
    esac
done

work="$(mktemp -d /tmp/lrkit-floor.XXXXXX)"
if [ "$keep" = 0 ]; then trap 'rm -rf "$work"' EXIT; fi
V="$work/env/bin"
step() { echo "deps_floor.sh: $*" >&2; }
# pip without the warnings this machine's pip.conf adds for each package (an extra index that is absent)
pipq() {
    "$V/pip" "$@" 2>&1 | grep -v "^WARNING: Location"
    return "${PIPESTATUS[0]}"
}

step "venv in $work/env"
"$python" -m venv "$work/env" || exit 1
pipq install -q uv "torch==$torch" || exit 1

echo "torch==$torch" >"$work/override.txt"
if [ -n "${NUMPY:-}" ]; then echo "numpy==$NUMPY" >>"$work/override.txt"; fi
step "resolving lrkit[all] and the dev group at their floors"
"$V/uv" pip compile -q --no-header --no-annotate --python "$V/python" --resolution lowest-direct \
    --all-extras --group dev --override "$work/override.txt" -o "$work/lock.txt" "$root/pyproject.toml" ||
    exit 1
# the pinned torch is installed; its CUDA libraries (resolved for PyPI's build) are not wanted
grep -vE '^(torch==|nvidia-|triton==|cuda-)' "$work/lock.txt" >"$work/lock-no-torch.txt"
pipq install -q --no-deps -r "$work/lock-no-torch.txt" || exit 1
pipq install -q --no-deps -e "$root" || exit 1
pipq check || exit 1
step "installed: $("$V/pip" list 2>/dev/null | grep -iE '^(numpy|torch|matplotlib|scikit-learn|optuna|keras|jax|optax|PyYAML|array.api.compat|schedulefree|prodigyopt|psycopg2-binary|pandas|transformers|accelerate|lightning) ' | tr -s ' ' | tr '\n' ';')"

run="$work/run"
mkdir -p "$run"
cd "$run" || exit 1
export OMP_NUM_THREADS=1 MPLBACKEND=Agg KERAS_BACKEND=torch HF_HUB_OFFLINE=1
failed=0
t() {
    local name="$1"
    shift
    if timeout 900 "$@" >"$run/log.$name" 2>&1; then
        echo "PASS $name"
    else
        echo "FAIL $name: $(grep -v '^\s*$' "$run/log.$name" | tail -3 | tr '\n' ' ' | cut -c1-500)"
        failed=1
    fi
}

t plot "$V/lrkit" plot "warmup(10) >> cosine(lr=0.1)" --total 100 --out p.png
t gallery "$V/lrkit" gallery --out g.png
printf 'type: cosine\nlr: 0.1\nsteps: 100\n' >s.yaml
t show_yaml "$V/lrkit" show s.yaml --at 50
t yaml_toml "$V/python" -c "
import lrkit, lrkit.spec as s
x = lrkit.parse('warmup(10) >> cosine(lr=3e-4, steps=100)')
assert s.from_toml(s.to_toml(x)) == x == s.from_yaml(s.to_yaml(x))"
t find "$V/lrkit" find --task digits-mlp-sgd --num-steps 30 --repeats 1 --out f.png
t lab_digits "$V/lrkit" lab --task digits-mlp-sgd --epochs 1 --workers 1 --out lab1 \
    --strategy "cosine(lr=0.05)" --strategy "sf@schedulefree_adamw=constant(0.0025)" \
    --strategy "pr@prodigy=constant(1.0)"
printf 'task: mnist1d-cnn\nepochs: 1\nworkers: 1\nstrategies:\n  - label: c\n    spec: "cosine(lr=5e-2)"\n' >e.yaml
t lab_yaml_mnist1d "$V/lrkit" lab e.yaml --out lab2
t tune "$V/lrkit" tune --task digits-mlp-sgd --trials 2 --epochs 1 --no-finder --lr-range 0.01 0.1 \
    --no-report --storage t.db
for ex in torch_loop keras_fit optax_loop transformers_trainer lightning_plateau; do
    t "example_$ex" "$V/python" "$root/examples/$ex.py"
done
t keras_plateau_float_lr "$V/python" -c "
import keras, numpy as np, lrkit.keras
m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, trainable=False)])  # a flat loss
m.compile(optimizer=keras.optimizers.SGD(0.1), loss='mse')
cb = lrkit.keras.ReduceOnPlateau(monitor='loss', patience=0, factor=0.5)
m.fit(np.ones((8, 1)), np.ones((8, 1)), epochs=3, verbose=0, callbacks=[cb])
lr = float(keras.ops.convert_to_numpy(m.optimizer.learning_rate))
assert abs(lr - 0.025) < 1e-7, lr  # best at epoch 1, cut after epochs 2 and 3"

if [ "$tests" = 1 ]; then
    cd "$root" || exit 1
    t pytest_install "$V/pip" install -q pytest hypothesis
    t tests "$V/python" -m pytest -q -p no:cacheprovider -o addopts= tests/test_keras.py \
        tests/test_control_keras_plateau.py tests/test_optax.py tests/test_schedule_backends.py \
        tests/test_tune.py tests/test_tune_inputs.py tests/test_lab.py tests/test_report.py \
        tests/test_spec.py tests/test_tasks.py tests/test_transformers.py tests/test_accelerate.py \
        tests/test_lightning.py tests/test_packaging.py
fi
if [ "$keep" = 1 ]; then step "kept $work"; fi
exit "$failed"
