#!/usr/bin/env bash
# lrkit at its declared floors: what a user with the oldest allowed packages gets.
#
# Resolves lrkit[all] plus the dev group with `uv pip compile --resolution lowest-direct` (every direct
# dependency at its floor; numpy at 2.0.0), installs that into a fresh venv under /tmp and runs each part
# of lrkit on it: the CLI (plot, gallery, YAML/TOML specs, find, lab on digits with Schedule-Free and
# Prodigy, an experiment file on MNIST-1D, tune; each also fails on a library's warning in its output,
# which a user at the floors would see), the Keras, optax, torch, transformers and Lightning examples, a
# float-LR ReduceOnPlateau in Keras, and the LR finders for Keras (torch backend) and optax on digits (a
# trusted suggestion, the model or params as they were). Prints PASS/FAIL per part and exits non-zero on
# a FAIL. With --tests it also runs the test files of the parts that depend on a floor.
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
# a warning as Python prints it: "path/to/file.py:186: ExperimentalWarning: ..."
warning='^\S+\.py:[0-9]+: [A-Za-z]*Warning: '
# t NAME [--quiet] COMMAND...: PASS when COMMAND succeeds (with --quiet: and prints no warning)
t() {
    local name="$1" quiet=0 log="$run/log.$1"
    shift
    if [ "$1" = --quiet ]; then
        quiet=1
        shift
    fi
    if ! timeout 900 "$@" >"$log" 2>&1; then
        echo "FAIL $name: $(grep -v '^\s*$' "$log" | tail -3 | tr '\n' ' ' | cut -c1-500)"
        failed=1
    elif [ "$quiet" = 1 ] && grep -qE "$warning" "$log"; then
        echo "FAIL $name: a warning reached the user: $(grep -m1 -E "$warning" "$log" | cut -c1-400)"
        failed=1
    else
        echo "PASS $name"
    fi
}

t plot --quiet "$V/lrkit" plot "warmup(10) >> cosine(lr=0.1)" --total 100 --out p.png
t gallery --quiet "$V/lrkit" gallery --out g.png
printf 'type: cosine\nlr: 0.1\nsteps: 100\n' >s.yaml
t show_yaml --quiet "$V/lrkit" show s.yaml --at 50
t yaml_toml "$V/python" -c "
import lrkit, lrkit.spec as s
x = lrkit.parse('warmup(10) >> cosine(lr=3e-4, steps=100)')
assert s.from_toml(s.to_toml(x)) == x == s.from_yaml(s.to_yaml(x))"
t find --quiet "$V/lrkit" find --task digits-mlp-sgd --num-steps 30 --repeats 1 --out f.png
t lab_digits --quiet "$V/lrkit" lab --task digits-mlp-sgd --epochs 1 --workers 1 --out lab1 \
    --strategy "cosine(lr=0.05)" --strategy "sf@schedulefree_adamw=constant(0.0025)" \
    --strategy "pr@prodigy=constant(1.0)"
printf 'task: mnist1d-cnn\nepochs: 1\nworkers: 1\nstrategies:\n  - label: c\n    spec: "cosine(lr=5e-2)"\n' >e.yaml
t lab_yaml_mnist1d --quiet "$V/lrkit" lab e.yaml --out lab2
t tune --quiet "$V/lrkit" tune --task digits-mlp-sgd --trials 2 --epochs 1 --no-finder --lr-range 0.01 0.1 \
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
# the range tests on digits: a trusted suggestion inside its interval, and everything put back
digits='
import numpy as np
from sklearn.datasets import load_digits
d = load_digits()
x, y = (d.data / 16).astype("float32"), d.target.astype("int32")
def check(res, low, high):
    assert res.trusted, res.reason
    lr = res.require()
    assert res.interval[0] <= lr <= res.interval[1] and low < lr < high, (lr, res.interval)
'
t keras_find_lr "$V/python" -c "$digits
import keras, lrkit.keras
assert keras.backend.backend() == 'torch', keras.backend.backend()
keras.utils.set_random_seed(0)
m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation='tanh'),
                      keras.layers.BatchNormalization(), keras.layers.Dense(10)])
m.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
m.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)  # momentum, BN statistics, 4 steps
def state():
    every = (*m.variables, *m.optimizer.variables, *m.metrics_variables)
    return [keras.ops.convert_to_numpy(v.value).tobytes() for v in every]
before = state()
check(lrkit.keras.find_lr(m, x[:1400], y[:1400], batch_size=64, repeats=3), 1e-3, 10)
assert state() == before  # weights, momentum, BN statistics, metrics: bit for bit
assert float(m.optimizer.learning_rate) == float(np.float32(1e-3)) and int(m.optimizer.iterations) == 4"
t optax_find_lr "$V/python" -c "$digits
import jax, jax.numpy as jnp, optax, lrkit.optax
k1, k2 = jax.random.split(jax.random.PRNGKey(0))
params = {'w1': np.asarray(jax.random.normal(k1, (64, 32))) / 8, 'b1': np.zeros(32, 'float32'),
          'w2': np.asarray(jax.random.normal(k2, (32, 10))) / 32**0.5, 'b2': np.zeros(10, 'float32')}
kept = {k: v.copy() for k, v in params.items()}
def loss(p, batch):
    logits = jnp.tanh(batch[0] @ p['w1'] + p['b1']) @ p['w2'] + p['b2']
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()
opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
res = lrkit.optax.find_lr(loss, params, opt, (x[:1400], y[:1400]), batch_size=64, repeats=3)
check(res, 1e-4, 1)
assert all(np.array_equal(params[k], kept[k]) for k in kept)  # numpy leaves: never written in place
sched = lrkit.optax.schedule(res.schedule(), total_steps=100)  # the result's schedule runs in optax
assert abs(float(jnp.max(jax.vmap(sched)(jnp.arange(100)))) / res.peak_lr - 1) < 1e-6"

if [ "$tests" = 1 ]; then
    cd "$root" || exit 1
    t pytest_install "$V/pip" install -q pytest hypothesis
    t tests "$V/python" -m pytest -q -p no:cacheprovider -o addopts= tests/test_keras.py \
        tests/test_control_keras_plateau.py tests/test_optax.py tests/test_schedule_backends.py \
        tests/test_tune.py tests/test_tune_inputs.py tests/test_lab.py tests/test_report.py \
        tests/test_spec.py tests/test_tasks.py tests/test_transformers.py tests/test_accelerate.py \
        tests/test_lightning.py tests/test_packaging.py tests/test_finder_keras.py \
        tests/test_finder_optax.py tests/test_finder_escalation_drivers.py tests/test_schedule_free.py \
        tests/test_in_run.py tests/test_cli_flags.py tests/test_finder_plot.py tests/test_auto_plot.py
fi
if [ "$keep" = 1 ]; then step "kept $work"; fi
exit "$failed"
