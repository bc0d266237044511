"""Benchmarks that print figures (never timed assertions): run each from the repository root as a module,
`python -m bench.bench_models`, `python -m bench.bench_input_pipeline`, `python -m bench.bench_aot`,
`python -m bench.bench_label_quality` (a trained BF-Net's labels on the held-out sets).

`bench/torch_twin/` holds the PyTorch port the model benchmark times side by side (`--torch_python`); it runs
under its own interpreter, as a script.
"""
