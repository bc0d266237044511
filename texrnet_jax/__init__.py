"""texrnet-jax: TexRNet ("Rethinking Text Segmentation", CVPR 2021) in JAX and Flax NNX.

The package is in layers, and imports only go downwards (`tests/test_import_graph.py` checks it):

* leaves: `constants` (the reference's scales, mean/std, label values, glyph classes) and `resample` (the
  reference's resampling rules: align-corners bilinear, the nearest-label rule); they import nothing of the package;
* `xla_cpu`: the XLA:CPU forms of convolutions and fusion, and the switch that turns them off;
* libraries: `models` (pure: no platform or device logic), `losses`, `box_losses`, `metrics`, `preprocessing`,
  `input_pipeline`, `parallel`, `optim`, `checkpoint`, `weights`, `convert`, `weak_labels` (all but `label_flow`);
* flows: `train`, `evaluate` (also the multi-scale inference library), `predict`, `weak_labels.label_flow`, and
  `cli`, which dispatches to them.

Flows import libraries; libraries never import flows. Data and losses never import the models. Prediction and
evaluation never import training or the optimizer: they restore the model alone (`weights.load_for_inference`).
"""

__version__ = "0.1.0"
