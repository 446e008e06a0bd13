"""The adaptive optimizers by name (AdaGrad, RMSprop, Adam, AdamW): the torch class and settings each
name builds, the update rules the guide writes for them (docs/en/strategies/adaptive.md), checked step by
step against torch with the papers' formulas written out in numpy, and the errors for a bad name or a
hyper-parameter that is not one."""

from __future__ import annotations

import numpy as np
import pytest

from lrkit.tasks.optimizers import DEFAULT_LR, make_optimizer

torch = pytest.importorskip("torch")

STEPS = 6


def _gradients(seed: int = 0) -> np.ndarray:
    """STEPS gradients of a 5-element parameter, in float64, of mixed signs and scales."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((STEPS, 5)) * np.array([1e-3, 0.1, 1.0, 10.0, 3.0])


def _torch_path(name: str, lr: float, params: dict[str, object] | None = None) -> np.ndarray:
    """The weights after each of STEPS steps of ``make_optimizer(name)`` fed :func:`_gradients`."""
    w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5, dtype=torch.float64))
    opt = make_optimizer(name, [w], lr, params)
    out = []
    for g in _gradients():
        w.grad = torch.from_numpy(g.copy())
        opt.step()
        out.append(w.detach().numpy().copy())
    return np.array(out)


def _numpy_path(update: object) -> np.ndarray:
    """The weights after each step of ``update(w, g, t, state) -> w`` (t = 1, 2, ...), from the same start."""
    w, state, out = np.linspace(-1.0, 1.0, 5), {}, []
    for t, g in enumerate(_gradients(), 1):
        w = update(w, g, t, state)  # type: ignore[operator]
        out.append(w.copy())
    return np.array(out)


# the guide's formulas (docs/en/strategies/adaptive.md), from the papers


def adagrad(lr: float, eps: float = 1e-10, v0: float = 0.0, lr_decay: float = 0.0) -> object:
    """Duchi et al. 2011, diagonal: v += g²; w -= lr_t * g / (sqrt(v) + eps), torch's
    lr_t = lr / (1 + (t - 1) * lr_decay)."""

    def update(w: np.ndarray, g: np.ndarray, t: int, s: dict[str, np.ndarray]) -> np.ndarray:
        s["v"] = s.get("v", np.full_like(w, v0)) + g**2
        return w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s["v"]) + eps)

    return update


def rmsprop(lr: float, rho: float, eps: float = 1e-8) -> object:
    """Tieleman & Hinton 2012: v = rho * v + (1 - rho) * g²; w -= lr * g / (sqrt(v) + eps); no bias
    correction."""

    def update(w: np.ndarray, g: np.ndarray, t: int, s: dict[str, np.ndarray]) -> np.ndarray:
        s["v"] = rho * s.get("v", np.zeros_like(w)) + (1 - rho) * g**2
        return w - lr * g / (np.sqrt(s["v"]) + eps)

    return update


def adam(
    lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, decoupled: float = 0.0, l2: float = 0.0
) -> object:
    """Kingma & Ba 2015, Algorithm 1, with the bias corrections m / (1 - b1^t), v / (1 - b2^t); ``l2``:
    Adam(weight_decay=l2), g += l2 * w before the moments; ``decoupled``: AdamW as torch writes it,
    w -= lr * decoupled * w before Adam's step (Loshchilov & Hutter 2019, with lr = alpha * eta_t)."""

    def update(w: np.ndarray, g: np.ndarray, t: int, s: dict[str, np.ndarray]) -> np.ndarray:
        g = g + l2 * w
        w = w - lr * decoupled * w
        s["m"] = b1 * s.get("m", np.zeros_like(w)) + (1 - b1) * g
        s["v"] = b2 * s.get("v", np.zeros_like(w)) + (1 - b2) * g**2
        m_hat, v_hat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)

    return update


@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        ("adagrad", None, adagrad(0.05)),
        ("adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.1}, adagrad(0.05, v0=0.1, lr_decay=0.1)),
        ("rmsprop", None, rmsprop(0.05, rho=0.99)),  # torch's alpha: 0.99
        ("rmsprop", {"alpha": 0.9}, rmsprop(0.05, rho=0.9)),  # the lecture's and Keras' 0.9
        ("adam", None, adam(0.05)),
        ("adam", {"weight_decay": 0.1}, adam(0.05, l2=0.1)),  # L2: through the moments
        ("adamw", None, adam(0.05, decoupled=0.01)),  # torch's default weight_decay 0.01
        ("adamw", {"weight_decay": 0.1, "betas": [0.8, 0.99]}, adam(0.05, 0.8, 0.99, decoupled=0.1)),
    ],
)
def test_each_name_follows_the_guide_s_update_rule(name: str, params: dict | None, reference: object) -> None:
    np.testing.assert_allclose(
        _torch_path(name, 0.05, params), _numpy_path(reference), rtol=1e-12, atol=1e-15
    )


def test_the_formulas_tell_the_optimizers_apart() -> None:
    """The references above can fail: torch's AdamW is not Adam with L2, and torch's RMSprop (alpha 0.99)
    is not the lecture's rho 0.9."""
    path = _torch_path("adamw", 0.05, {"weight_decay": 0.1})
    assert np.abs(path - _numpy_path(adam(0.05, l2=0.1))).max() > 1e-4
    assert np.abs(_torch_path("rmsprop", 0.05) - _numpy_path(rmsprop(0.05, rho=0.9))).max() > 1e-3


def test_first_steps_as_the_guide_says() -> None:
    """AdaGrad's and Adam's first step is lr in every coordinate; torch's RMSprop, without a bias
    correction, takes lr / sqrt(1 - alpha) = 10 lr (3.16 lr at Keras' rho 0.9)."""
    start = np.linspace(-1.0, 1.0, 5)
    for name, params, size in [
        ("adagrad", None, 1.0),
        ("adam", None, 1.0),
        ("rmsprop", None, 10.0),
        ("rmsprop", {"alpha": 0.9}, 10**0.5),
    ]:
        step = np.abs(_torch_path(name, 1e-3, params)[0] - start)
        np.testing.assert_allclose(step, size * 1e-3, rtol=1e-3, err_msg=name)  # eps aside


@pytest.mark.parametrize(
    ("name", "cls"), [("adagrad", "Adagrad"), ("rmsprop", "RMSprop"), ("adam", "Adam"), ("adamw", "AdamW")]
)
def test_each_name_is_the_torch_class_with_torch_s_defaults(name: str, cls: str) -> None:
    """What the guide's table and the module's docstring say: torch's class, every default kept (AdamW's
    weight_decay 0.01 is torch's own), RMSprop's alpha 0.99 and eps 1e-8, AdaGrad's eps 1e-10."""
    w = [torch.nn.Parameter(torch.zeros(2))]
    opt = make_optimizer(name, w, 0.123)
    ref = getattr(torch.optim, cls)([torch.nn.Parameter(torch.zeros(2))], lr=0.123)
    assert type(opt) is type(ref)
    assert opt.defaults == ref.defaults
    documented = {
        "adagrad": {"lr_decay": 0, "initial_accumulator_value": 0, "eps": 1e-10},
        "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0, "centered": False},
        "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0},
        "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
    }[name]
    assert {k: opt.defaults[k] for k in documented} == documented


def test_default_lrs_of_the_adaptive_optimizers() -> None:
    """The guide's 'typical lr' column: AdaGrad 1e-2, RMSprop 1e-3 (Keras'; torch's own is 1e-2), Adam
    and AdamW 1e-3."""
    assert {k: DEFAULT_LR[k] for k in ("adagrad", "rmsprop", "adam", "adamw")} == {
        "adagrad": 1e-2,
        "rmsprop": 1e-3,
        "adam": 1e-3,
        "adamw": 1e-3,
    }
    assert torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(1))]).defaults["lr"] == 1e-2


@pytest.mark.parametrize(
    ("spelling", "meant"),
    [
        ("AdamW", "adamw"),
        ("RMSProp", "rmsprop"),
        ("Adagrad", "adagrad"),
        ("adam_w", "adamw"),
        ("admw", "adamw"),
    ],
)
def test_a_misspelled_name_is_refused_with_the_choices_and_the_closest(spelling: str, meant: str) -> None:
    with pytest.raises(ValueError) as info:
        make_optimizer(spelling, [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    msg = str(info.value)
    assert msg.startswith("optimizer must be one of sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw")
    assert f"got {spelling!r} (did you mean {meant!r}?)" in msg


def test_an_unrelated_name_gets_no_guess() -> None:
    with pytest.raises(ValueError, match=r"got 'lbfgs'$"):
        make_optimizer("lbfgs", [torch.nn.Parameter(torch.zeros(1))], 1e-3)


def test_the_lab_names_a_misspelled_optimizer() -> None:
    from lrkit.lab.runner import Strategy

    with pytest.raises(
        ValueError,
        match=r"--strategy 'a@AdamW=constant\(1e-3\)': OPT must be one of .*"
        r"got 'AdamW' \(did you mean 'adamw'\?\)",
    ):
        Strategy.parse("a@AdamW=constant(1e-3)", "--strategy")


@pytest.mark.parametrize("key", ["lr", "params"])
def test_lr_in_hyper_parameters_is_refused_by_name(key: str) -> None:
    """The schedule sets lr; before, Python's 'got multiple values for keyword argument' came out."""
    with pytest.raises(ValueError, match=rf"optimizer_params: '{key}' is not a hyper-parameter here: "):
        make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 1e-3, {key: 0.1})
    from lrkit.lab.runner import Strategy

    with pytest.raises(
        ValueError, match=rf"strategy 'x': optimizer_params: '{key}' is not a hyper-parameter"
    ):
        Strategy("x", "constant(1e-3)", "adam", {key: 0.1})


_KERAS = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras
grads, out = json.loads(sys.argv[1]), {}
for name in ("Adagrad", "RMSprop", "Adam", "AdamW"):
    opt = getattr(keras.optimizers, name)(learning_rate=0.05)
    w, path = keras.Variable(np.linspace(-1.0, 1.0, 5), dtype="float64"), []
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(np.array(g), dtype="float64"), w)])
        path.append(keras.ops.convert_to_numpy(w).tolist())
    keys = ("rho", "epsilon", "initial_accumulator_value", "weight_decay")
    out[name] = {"config": {k: opt.get_config().get(k) for k in keys}, "path": path}
print(json.dumps(out))
"""


def test_where_keras_differs_as_the_guide_says() -> None:
    """The guide's 'where Keras differs' column, against Keras itself (in a subprocess: only
    tests/test_keras.py imports keras in the test process): its defaults, and lrkit's names given those
    settings follow Keras' updates (eps sits inside Keras' root, outside torch's: negligible at
    gradients of scale 1), while torch's RMSprop default (alpha 0.99) does not."""
    import importlib.util
    import json
    import subprocess
    import sys

    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    grads = _gradients() * np.array([1e3, 10.0, 1.0, 0.1, 0.3])  # all of scale 1: eps aside
    done = subprocess.run(
        [sys.executable, "-c", _KERAS, json.dumps(grads.tolist())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    keras_out = json.loads(done.stdout)
    assert {k: keras_out[k]["config"] for k in keras_out} == {
        "Adagrad": {"rho": None, "epsilon": 1e-7, "initial_accumulator_value": 0.1, "weight_decay": None},
        "RMSprop": {"rho": 0.9, "epsilon": 1e-7, "initial_accumulator_value": None, "weight_decay": None},
        "Adam": {"rho": None, "epsilon": 1e-7, "initial_accumulator_value": None, "weight_decay": None},
        "AdamW": {"rho": None, "epsilon": 1e-7, "initial_accumulator_value": None, "weight_decay": 0.004},
    }

    def steps(name: str, params: dict[str, object] | None) -> np.ndarray:
        w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5, dtype=torch.float64))
        opt = make_optimizer(name, [w], 0.05, params)
        path = []
        for g in grads:
            w.grad = torch.from_numpy(g.copy())
            opt.step()
            path.append(w.detach().numpy().copy())
        return np.diff(np.array([np.linspace(-1.0, 1.0, 5), *path]), axis=0)

    def keras_steps(name: str) -> np.ndarray:
        return np.diff(np.array([np.linspace(-1.0, 1.0, 5), *keras_out[name]["path"]]), axis=0)

    same = {
        "Adagrad": ("adagrad", {"initial_accumulator_value": 0.1, "eps": 1e-7}),
        "RMSprop": ("rmsprop", {"alpha": 0.9, "eps": 1e-7}),
        "Adam": ("adam", {"eps": 1e-7}),
        "AdamW": ("adamw", {"weight_decay": 0.004, "eps": 1e-7}),
    }
    for keras_name, (name, params) in same.items():
        np.testing.assert_allclose(
            steps(name, params), keras_steps(keras_name), rtol=1e-3, err_msg=keras_name
        )
    torch_default = np.abs(steps("rmsprop", None) / keras_steps("RMSprop") - 1).max()
    assert torch_default > 0.5  # alpha 0.99: the first step alone is sqrt(0.1 / 0.01) = 3.2 times Keras'


def test_an_unknown_hyper_parameter_is_named_with_torch_s_name_and_the_list() -> None:
    """A Keras user writes rho, epsilon or beta_1: the error says torch's name and lists what the class
    takes (before: Python's 'RMSprop.__init__() got an unexpected keyword argument 'rho'')."""
    w = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError) as info:
        make_optimizer("rmsprop", w, 1e-3, {"rho": 0.9})
    msg = str(info.value)
    assert msg.startswith(
        "optimizer 'rmsprop' (torch.optim.RMSprop) has no hyper-parameter 'rho' (Keras' name; torch's is "
        "'alpha'); it takes alpha, eps, weight_decay, momentum, centered"
    )
    assert "lr" not in msg.split("it takes ")[1].split(", ")  # the schedule's
    with pytest.raises(
        ValueError,
        match=r"'epsilon' \(Keras' name; torch's is 'eps'\), 'betaz' \(did you mean "
        r"'betas'\?\), 'foo'; it takes betas, eps, weight_decay",
    ):
        make_optimizer("adam", w, 1e-3, {"epsilon": 1e-7, "betaz": 0.9, "foo": 1})
    from lrkit.lab.runner import Strategy

    with pytest.raises(
        ValueError, match=r"strategy 'k'.*no hyper-parameter 'rho' \(Keras' name; torch's is 'alpha'\)"
    ):
        Strategy("k", "constant(1e-3)", "rmsprop", {"rho": 0.9})
