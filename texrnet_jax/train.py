"""The training flow: a pure jitted step over a device mesh, Orbax resume, logging, evaluation at the end.

The train state is a plain pytree `{'params', 'rest', 'opt_state', 'step'}`: `params` and `rest` (BatchNorm
statistics and any RNG state) are the `nnx.split` of the model; the model is merged inside the step. The
step is compiled once with donated state, replicated state and a batch split over the `data` axis.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from texrnet_jax import (box_losses, checkpoint, evaluate, input_pipeline, losses, optim, parallel, preprocessing,
                         weights)
from texrnet_jax.metric_writer import MetricWriter
from texrnet_jax.workdir import check_workdir


def init_state(params: Any, rest: Any, tx: optax.GradientTransformation) -> dict[str, Any]:
    """The training state `make_train_step` updates and checkpoints save: weights, optimizer state, step 0.

    Works on abstract trees too (`jax.eval_shape`).
    """
    return {"params": params, "rest": rest, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}


def make_train_step(train_def: nnx.GraphDef, tx: optax.GradientTransformation, schedule, loss_cfg, ignore_label: int,
                    glyph_def: nnx.GraphDef | None = None, image_mean_std: tuple | None = None):
    """The pure update `(state, batch, glyph_state) -> (state, metrics)`.

    With `loss_cfg.box_supervision` the pixel losses are replaced by `box_losses.texrnet_box_losses` on the batch's
    `word_boxes`, `word_valid`, `word_ignore` and the crop's colours (`image_mean_std`, the data's normalisation,
    undoes it); `batch['mask']` is never read.

    With `glyph_def` (the frozen classifier's graphdef; its weights are the `glyph_state` argument, never
    updated) the total adds `loss_cfg.glyph * losscls` on the text probability of the semantic logits, and the
    batch must carry `char_boxes`, `char_labels`, `char_valid` (`[B, K, ...]`, see `input_pipeline`).
    """
    weights = (loss_cfg.sem, loss_cfg.rfn, loss_cfg.rfntri)

    def train_step(state, batch, glyph_state=None):
        if "image_hw" in batch:  # uint8 crops from the input pipeline (config.data.uint8_batches)
            if image_mean_std is None:
                raise ValueError("uint8 batches need the data's normalisation (make_train_step image_mean_std=)")
            batch = preprocessing.normalize_batch(batch, *image_mean_std)

        def loss_fn(params):
            # Fresh Variable objects at this trace level: BatchNorm mutates its statistics inside grad.
            model = nnx.merge(train_def, params, jax.tree.map(lambda x: x, state["rest"]))
            out = model(batch["image"])
            if loss_cfg.get("box_supervision", False):
                terms = _box_terms(loss_cfg, out, batch, state["step"], image_mean_std)
            else:
                terms = losses.texrnet_losses(out["logit_sem"], out.get("logit_rfn"), batch["mask"], ignore_label,
                                              weights)
            if glyph_def is not None:
                terms.update(_glyph_terms(glyph_def, glyph_state, out["logit_sem"], batch))
                terms["total"] = terms["total"] + loss_cfg.glyph * terms["losscls"]
            _, _, rest = nnx.split(model, nnx.Param, ...)
            return terms["total"], (terms, rest)

        (_, (terms, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {**terms, "lr": schedule(state["step"]), "grad_norm": optax.global_norm(grads)}
        new_state = {"params": params, "rest": rest, "opt_state": opt_state, "step": state["step"] + 1}
        return new_state, metrics

    return train_step


def _box_terms(loss_cfg, out, batch, step, image_mean_std) -> dict[str, jax.Array]:
    """Box-supervised terms of both heads (the pairwise weight ramps up from step 0); never reads the mask."""
    if image_mean_std is None:
        raise ValueError("box supervision needs the data's normalisation (make_train_step image_mean_std=)")
    rgb = box_losses.rgb_from_normalized(batch["image"], *image_mean_std)
    pair = loss_cfg.box_pairwise * box_losses.pairwise_warmup(step, loss_cfg.box_pairwise_warmup_steps)
    return box_losses.texrnet_box_losses(
        out["logit_sem"], out.get("logit_rfn"), rgb, batch["word_boxes"], batch["word_valid"], batch["word_ignore"],
        weights=(loss_cfg.sem, loss_cfg.rfn), term_weights=(loss_cfg.box_projection, loss_cfg.box_background, pair),
        dilation=loss_cfg.box_pairwise_dilation, theta=loss_cfg.box_pairwise_theta, tau=loss_cfg.box_pairwise_tau)


def _glyph_terms(glyph_def, glyph_state, logit_sem, batch) -> dict[str, jax.Array]:
    """`losscls` on the text softmax of the semantic logits (reference `INTRAIN_GETPRED_FROM='sem'`); box count."""
    classifier = nnx.merge(glyph_def, glyph_state)
    prob_text = jax.nn.softmax(logit_sem.astype(jnp.float32), axis=-1)[..., 1:2]
    n, k = batch["char_labels"].shape
    loss, num_boxes = losses.glyph_loss(
        classifier, prob_text, batch["char_boxes"].reshape(n * k, 4), jnp.repeat(jnp.arange(n), k),
        batch["char_labels"].reshape(n * k), batch["char_valid"].reshape(n * k), input_hw=batch["image"].shape[1:3])
    return {"losscls": loss, "glyph_boxes": num_boxes.astype(jnp.float32)}


class _StopRequest:
    """Turns SIGTERM (preemption) into a stop at a step boundary, after a checkpoint.

    One process: a SIGTERM handler sets a flag. Several processes (`jax.distributed`): JAX's preemption service
    catches the signal on whichever process gets it and propagates it, and `reached_preemption_sync_point` turns
    true on every process at the same step, so all of them take part in the (collective) save and stop together.
    """

    def __init__(self):
        self.requested = False
        self._previous = None
        self._multi = jax.process_count() > 1

    def __enter__(self):
        if self._multi:
            return self  # our own handler would replace the preemption service's
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread (e.g. some test runners): no handler
            self._previous = None
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True

    def should_stop(self, step: int) -> bool:
        """Whether to checkpoint and stop after `step` (call once per step, on every process)."""
        if self._multi:
            from jax.experimental import multihost_utils

            self.requested = self.requested or multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.asarray([jnp.isfinite(x).all() for x in leaves]))


def check_finite(metrics: list[Mapping[str, Any]], step: int, state: Any, ckpt: checkpoint.Checkpointer) -> None:
    """Raises FloatingPointError (one line) if a loss in `metrics` or a float in `state` is not finite.

    Args:
        metrics: host metrics of the steps `step - len(metrics) + 1 ... step`, oldest first.
        step: the step just taken.
        state: the train state after `step` (None: check only the losses).
        ckpt: names the last good checkpoint in the message (after its pending saves finish).
    """
    totals = [float(m["total"]) for m in metrics]
    bad = [i for i, t in enumerate(totals) if not np.isfinite(t)]
    if bad:
        problem = f"non-finite loss {totals[bad[0]]} at step {step - len(totals) + 1 + bad[0]}"
    elif state is not None and not bool(_all_finite(state)):
        problem = f"non-finite parameters or optimizer state after step {step}"
    else:
        return
    ckpt.wait()
    latest = ckpt.latest_step()
    good = f"the last good checkpoint is step {latest}" if latest is not None else "no checkpoint was written"
    raise FloatingPointError(f"{problem}; {good} in {ckpt.directory}")


# The training log warns (once) when the step waited for its batch more than this fraction of a logging window.
INPUT_WAIT_WARN_FRACTION = 0.2


def input_bound_message(fraction: float, first: int, last: int, requested_workers: int) -> str:
    """The one-time warning that the input pipeline, not the step, sets the speed."""
    workers = input_pipeline.resolve_num_workers(requested_workers)
    return (f"input pipeline is the bottleneck: steps {first}-{last} waited for data {fraction:.0%} of the time "
            f"(warning above {INPUT_WAIT_WARN_FRACTION:.0%}); config.data.num_workers={requested_workers} "
            f"({workers} worker processes): raise it, or see docs/benchmarks.md 'Input pipeline' for the images/s "
            f"one worker delivers")


def _log_line(step: int, scalars: Mapping[str, float]) -> str:
    keys = ("total", "losssem", "lossrfn", "lossrfntri", "losscls", "lr", "images_per_sec")
    return f"step {step}: " + " ".join(f"{k}={scalars[k]:.4g}" for k in keys if k in scalars)


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), then evaluates.

    Returns:
        The evaluation metrics of `config.data.eval_split`.
    """
    from tqdm import tqdm

    workdir = check_workdir(workdir)
    mesh = parallel.make_mesh(config.train.num_devices)
    local_batch = parallel.per_process_batch(config.train.global_batch_size, mesh)
    writer = MetricWriter(workdir, enabled=parallel.is_main_process())
    writer.write_config(config.to_json_best_effort(indent=2))

    train_def, eval_def, params, rest = weights.create_model(config)
    tx, schedule = optim.build_optimizer(config.optim, params)
    state = init_state(params, rest, tx)
    state_sharding = parallel.state_shardings(state, mesh, config.train.fsdp)
    state = jax.device_put(state, state_sharding)
    if config.train.fsdp and parallel.is_main_process():
        full = sum(x.nbytes for x in jax.tree.leaves((state["params"], state["opt_state"])))
        print(f"FSDP over {mesh.devices.size} devices: parameters + optimizer state {full / 2**20:.2f} MiB -> "
              f"{parallel.per_device_nbytes((state['params'], state['opt_state'])) / 2**20:.2f} MiB per device",
              flush=True)

    glyph = weights.load_glyph_classifier(config.loss, config.seed)
    boxes_only = config.loss.get("box_supervision", False)
    train_iter = input_pipeline.train_iterator(config.data, local_batch, seed=config.seed,
                                               max_char_boxes=config.data.max_char_boxes if glyph else 0,
                                               max_word_boxes=config.data.max_word_boxes if boxes_only else 0,
                                               with_mask=not boxes_only)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config.ckpt.every_steps, config.ckpt.max_to_keep)
    latest = ckpt.latest_step()
    if latest is not None:
        state = ckpt.restore(latest, state, train_iter)
        writer.truncate_after(latest)
        print(f"Resuming from checkpoint at step {latest} in {workdir / 'checkpoints'}", flush=True)
    elif config.init_from:
        params, rest = weights.initialize_from(config, state["params"], state["rest"])
        state = jax.device_put({**state, "params": params, "rest": rest}, state_sharding)
        print(f"Initialised from {config.init_from}", flush=True)
    start = int(jax.device_get(state["step"]))

    step_fn = jax.jit(make_train_step(train_def, tx, schedule, config.loss, config.data.ignore_label,
                                      glyph_def=glyph[0] if glyph else None,
                                      image_mean_std=(config.data.mean, config.data.std)),
                      donate_argnums=0, out_shardings=(state_sharding, parallel.replicated(mesh)))
    # The frozen glyph classifier: an argument (not a traced constant), replicated, never donated or updated.
    glyph_state = jax.device_put(glyph[1], parallel.replicated(mesh)) if glyph else None
    block = parallel.should_block_each_step(mesh)
    num_steps, log_every = config.train.num_steps, config.train.log_every_steps
    bar = tqdm(total=num_steps, initial=start, desc="train", unit="step", disable=not parallel.is_main_process())
    pending: list[dict[str, jax.Array]] = []
    window_start, window_images, step = time.perf_counter(), 0, start
    data_wait, warned_input = 0.0, False  # seconds spent in next(train_iter) in this logging window
    # Leaving `ckpt` waits for its asynchronous saves on every path: the end, SIGTERM and errors. Closing the bar
    # ends its line, so that an error message starts on a line of its own.
    with _StopRequest() as stop, ckpt, contextlib.closing(bar):
        while step < num_steps:
            wait_start = time.perf_counter()
            batch = parallel.host_to_global(next(train_iter), mesh)
            data_wait += time.perf_counter() - wait_start
            state, metrics = step_fn(state, batch, glyph_state)
            step += 1
            pending.append(metrics)
            window_images += config.train.global_batch_size
            if block:
                jax.block_until_ready(metrics)
            if step % log_every == 0 or step == num_steps:
                host = jax.device_get(pending)
                scalars = {k: float(np.mean([m[k] for m in host])) for k in host[-1]}
                scalars.update(loss=scalars["total"], trimap_empty_count=float(sum(m["trimap_empty"] for m in host)),
                               valid_empty_count=float(sum(m["valid_empty"] for m in host)))
                pending = []
                check_finite(host, step, None, ckpt)
                elapsed = time.perf_counter() - window_start
                scalars["images_per_sec"] = window_images / max(elapsed, 1e-9)
                scalars["data_wait_fraction"] = min(1.0, data_wait / max(elapsed, 1e-9))
                # The first window after a (re)start holds the compilation and the pipeline's start-up: not judged.
                if (not warned_input and step > start + log_every
                        and scalars["data_wait_fraction"] > INPUT_WAIT_WARN_FRACTION):
                    warned_input = True
                    message = input_bound_message(scalars["data_wait_fraction"], step - log_every + 1, step,
                                                  config.data.num_workers)
                    logging.warning(message)
                    if parallel.is_main_process():
                        tqdm.write(message)
                writer.write_scalars(step, scalars)
                bar.set_postfix(loss=f"{scalars['total']:.4f}", img_s=f"{scalars['images_per_sec']:.1f}")
                logging.info(_log_line(step, scalars))
                window_start, window_images, data_wait = time.perf_counter(), 0, 0.0
            stopping = stop.should_stop(step)
            force = step == num_steps or stopping
            if force or ckpt.should_save(step):
                # Never checkpoint a non-finite state: losses not logged yet and the updated state are checked first.
                check_finite(jax.device_get(pending), step, state, ckpt)
                ckpt.save(step, state, train_iter, force=True)
            bar.update(1)
            if stopping:
                ckpt.wait()
                bar.close()
                print(f"SIGTERM: saved a checkpoint and stopped at step {step}; rerun the same command to resume.",
                      flush=True)
                writer.close()
                return {}
    writer.flush()
    result = evaluate.run_evaluation(config, eval_def, (state["params"], state["rest"]), workdir, step)
    # Tensorboard only: metrics.jsonl keeps exactly one line per logged training step.
    scalars = {f"eval/{k}": v for k, v in result.items() if k in ("fgiou", "fscore", "miou")}
    scalars.update({f"eval_check/{k}": v for k, v in result.get("check", {}).items() if k in ("fgiou", "fscore")})
    writer.write_scalars(step, scalars, jsonl=False)
    writer.close()
    return result
