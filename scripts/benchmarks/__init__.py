"""The benchmarks behind ``python scripts/bench.py``, one module per area.

- :mod:`.common`: sizes (``--quick``), the run's context, timing and machine helpers;
- :mod:`.reference`: seed 000's DataLoader loop, the baseline;
- :mod:`.training`: epoch, efficiency, accuracy, threads, compile and bf16 rows;
- :mod:`.optimize`: study throughput, Optuna's and the storage's cost, memory;
- :mod:`.fused`: the fused trainer's rows; :mod:`.verify`: ``hpsearch verify`` by seeds;
- :mod:`.suite`: every row by name, the run, the table; ``results/``: one JSON per machine.

Importable because ``python scripts/bench.py`` puts ``scripts/`` on ``sys.path``. Where a
row needs a knob it uses a parameter of the library (``train(build=..., profile=...)``,
``build_model(dropout=...)``, ``OMP_NUM_THREADS``), never a patched private name.
"""
