"""CPU timing of the paper's full-size models next to the reference PyTorch numbers (texrnet_reference.md s. 9).

For TexRNet + HRNetV2-W48 and TexRNet + DeepLabV3+ ResNet-101 (random weights, 512 x 512, batch 1):

* eval forward: the jitted eval-mode model (no gradient);
* train step: forward + TexRNet losses (1 sem + 0.5 rfn + 0.5 trimap) + gradient + SGD update
  (momentum 0.9, weight decay 5e-4 on every parameter, as optax `add_decayed_weights` + `sgd`), jitted, state
  donated. The reference's per-group LR scaling is a per-leaf multiply and does not change the cost.

Compile time is measured separately (`lower().compile()`), then 1 warm-up call and the median of
`--repeats` timed calls (each blocked until ready). The reference raises on a batch-1 DeepLab training
forward (the ASPP image-pooling BN sees one value per channel); like the reference timing, that one BN runs
in eval mode at batch 1. `--deeplab_batch2` also times the unmodified DeepLab train step at batch 2.

Usage::

    python bench/bench_models.py                       # both models, table + JSON lines on stdout
    python bench/bench_models.py --models=hrnet_w48 --repeats=5 --json_out=/tmp/bench.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from texrnet_jax.losses import texrnet_losses
from texrnet_jax.models import build_model

# Reference PyTorch 2.13 CPU medians on a 2-core machine of this project's kind (batch 1, 512 x 512).
REFERENCE_S = {
    ("hrnet_w48", "eval", 1): 1.21,
    ("hrnet_w48", "train", 1): 4.42,
    ("deeplab_r101", "eval", 1): 0.87,
    ("deeplab_r101", "train", 1): 3.02,
    ("deeplab_r101", "train", 2): 7.0,
}
IGNORE = 999


def _timed(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def _model(backbone: str) -> nnx.Module:
    # 'rbg' keys: the random init compiles several times faster on CPU than threefry; values are irrelevant here.
    return build_model({"name": "texrnet", "backbone": backbone},
                       rngs=nnx.Rngs(params=jax.random.key(0, impl="rbg"), dropout=jax.random.key(1, impl="rbg")))


def bench_eval(model: nnx.Module, x: jax.Array, repeats: int) -> dict:
    model.eval()
    graphdef, state = nnx.split(model)
    t = time.perf_counter()
    forward = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x)).lower(state, x).compile()
    compile_s = time.perf_counter() - t
    median, times = _timed(lambda: jax.block_until_ready(forward(state, x)), repeats)
    return {"compile_s": compile_s, "median_s": median, "times_s": times}


def bench_train(model: nnx.Module, x: jax.Array, label: jax.Array, repeats: int, pool_bn_eval: bool) -> dict:
    model.train()
    if pool_bn_eval:
        model.deeplab.aspp.conv5[2].use_running_average = True  # as in the reference's batch-1 timing
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.01, momentum=0.9))
    opt_state = tx.init(params)

    def step(params, rest, opt_state, x, label):
        def loss_fn(p):
            m = nnx.merge(graphdef, p, rest, copy=True)  # fresh Variables: BN mutates them inside grad
            out = m(x)
            terms = texrnet_losses(out["logit_sem"], out["logit_rfn"], label, IGNORE)
            return terms["total"], nnx.state(m, nnx.Not(nnx.Param))

        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    t = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1, 2)).lower(params, rest, opt_state, x, label).compile()
    compile_s = time.perf_counter() - t
    carry = [params, rest, opt_state]

    def run():
        p, r, o, loss = compiled(*carry, x, label)
        jax.block_until_ready(loss)
        carry[:] = [p, r, o]

    median, times = _timed(run, repeats)
    return {"compile_s": compile_s, "median_s": median, "times_s": times}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="hrnet_w48,deeplab_r101")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default="eval,train")
    p.add_argument("--deeplab_batch2", action="store_true", help="also time the DeepLab train step at batch 2")
    p.add_argument("--json_out", default=None, help="also append the JSON lines to this file")
    args = p.parse_args()

    rng = np.random.default_rng(0)
    rows = []
    for backbone in args.models.split(","):
        t = time.perf_counter()
        model = _model(backbone)
        build_s = time.perf_counter() - t
        n_params = sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))
        runs = [(mode, 1) for mode in args.modes.split(",")]
        if args.deeplab_batch2 and backbone.startswith("deeplab") and "train" in args.modes:
            runs.append(("train", 2))
        for mode, batch in runs:
            x = jnp.asarray(rng.normal(size=(batch, args.size, args.size, 3)), jnp.float32)
            label = jnp.asarray(rng.integers(0, 2, size=(batch, args.size, args.size)), jnp.int32)
            if mode == "eval":
                res = bench_eval(model, x, args.repeats)
            else:
                res = bench_train(_model(backbone), x, label, args.repeats,
                                  pool_bn_eval=backbone.startswith("deeplab") and batch == 1)
            row = {"model": f"texrnet_{backbone}", "mode": mode, "batch": batch, "size": args.size,
                   "params_M": round(n_params / 1e6, 2), "build_s": round(build_s, 2),
                   "compile_s": round(res["compile_s"], 2), "median_s": round(res["median_s"], 3),
                   "times_s": [round(v, 3) for v in res["times_s"]],
                   "reference_torch_s": REFERENCE_S.get((backbone, mode, batch)),
                   "jax": jax.__version__, "cpu_count": os.cpu_count(), "machine": platform.machine()}
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if args.json_out:
                with open(args.json_out, "a") as f:
                    f.write(line + "\n")

    print(f"\n{'model':24s} {'mode':5s} {'batch':>5s} {'compile s':>10s} {'JAX median s':>13s} "
          f"{'PyTorch s':>10s} {'JAX/PyTorch':>12s}")
    for r in rows:
        ref = r["reference_torch_s"]
        ratio = f"{r['median_s'] / ref:.2f}" if ref else "-"
        print(f"{r['model']:24s} {r['mode']:5s} {r['batch']:5d} {r['compile_s']:10.1f} {r['median_s']:13.3f} "
              f"{ref if ref else '-':>10} {ratio:>12s}")


if __name__ == "__main__":
    main()
